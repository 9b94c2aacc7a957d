"""One command-line style for every `python -m acl_jax.*` entry point.

An entry point states its arguments once, as a frozen kw-only dataclass (the defaults live there
and nowhere else), and hands it with its body to `run`:

    @dataclasses.dataclass(frozen=True, kw_only=True)
    class Args:
        workdir: str = cli.arg(help="Pretraining workdir.")  # no default: a required flag
        step: int | None = cli.arg(None, help="Checkpoint step (default: the latest).")

    def export(a: Args) -> None: ...  # the work: raises XError (exit 1) or cli.UsageError (2)

    def main(argv: list[str] | None = None) -> int:  # tests call main([...]) for the status
        return cli.run(Args, export, prog="python -m acl_jax.export", doc=__doc__, argv=argv,
                       errors=(XError,))

    if __name__ == "__main__":
        sys.exit(main())

Flags are the field names in kebab case (`label_fraction` -> `--label-fraction`; the underscore
spelling is accepted as well). The type comes from the annotation: str, int, float, `X | None`,
bool (`--flag`, `--flag=false`) and tuples (comma lists: `--splits=train,val,test`);
`cli.arg(..., positional=True)` makes a positional argument and `choices=` limits the values.
`--help` lists every flag with its type and default. With `config=True` the entry point also
takes `--config FILE` and `--config.a.b=VALUE` overrides (acl_jax.config) and is called as
`body(args, cfg)`; `--help` then also lists every config field with its type and default (the
values of FILE, overrides applied, when `--config FILE` is given). Before the body runs, absl's
flags are marked parsed (Grain's worker processes read them); there are no absl flags.

Exit status; every failure is ONE line on stderr:
  0  success, or --help.
  2  the command line is wrong: an unknown or misspelled flag, a missing required flag or
     value, a value of the wrong type, an unknown config key, a config the schema refuses, or
     a `UsageError` raised by the body. Printed as `error: MESSAGE (see --help)`.
  1  the work failed with one of the entry point's `errors` (or a `Failure`): bad data, a
     missing checkpoint, ... Printed as `error: MESSAGE`.
Any other exception is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import sys
import types
import typing
from collections.abc import Callable, Sequence
from typing import Any


class UsageError(Exception):
    """A wrong combination of flags found by the body: exit 2."""


class Failure(Exception):
    """The work failed for a reason the user can fix (the message says how): exit 1."""


def arg(default: Any = dataclasses.MISSING, *, help: str, choices=None, positional=False):
    """A dataclass field that is also a command-line argument; no default means required."""
    meta = {"help": help, "choices": choices, "positional": positional}
    return dataclasses.field(default=default, metadata=meta)


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> typing.NoReturn:  # argparse's usage errors
        _usage_exit(message)


def _usage_exit(message: str) -> typing.NoReturn:
    print(f"error: {message} (see --help)", file=sys.stderr)
    raise SystemExit(2)


def _strip_none(tp: Any) -> Any:
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        rest = [t for t in typing.get_args(tp) if t is not type(None)]
        return rest[0] if len(rest) == 1 else tp
    return tp


def type_name(tp: Any) -> str:
    tp = _strip_none(tp)
    if typing.get_origin(tp) is tuple:
        elems = typing.get_args(tp)
        if len(elems) == 2 and elems[1] is Ellipsis:
            return f"{type_name(elems[0])},..."
        return ",".join(type_name(e) for e in elems)
    return getattr(tp, "__name__", str(tp))


def _converter(tp: Any) -> Callable[[str], Any]:
    tp = _strip_none(tp)
    if typing.get_origin(tp) is tuple:
        elems = typing.get_args(tp)
        variadic = len(elems) == 2 and elems[1] is Ellipsis

        def tuple_(text: str) -> tuple:
            parts = [p.strip() for p in text.split(",") if p.strip()]
            if not variadic and len(parts) != len(elems):
                raise argparse.ArgumentTypeError(f"expected {type_name(tp)}, got {text!r}")
            convs = [_converter(e) for e in (elems[:1] * len(parts) if variadic else elems)]
            return tuple(c(p) for c, p in zip(convs, parts))

        return tuple_

    def scalar(text: str) -> Any:
        if tp is bool:
            low = text.strip().lower()
            if low in ("1", "true", "yes", "on", "0", "false", "no", "off"):
                return low in ("1", "true", "yes", "on")
        else:
            try:
                return tp(text)
            except ValueError:
                pass
        raise argparse.ArgumentTypeError(f"expected {type_name(tp)}, got {text!r}")

    return scalar


def show(value: Any) -> str:
    """A value as it is written on the command line."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, tuple):
        return ",".join(show(v) for v in value)
    if value is None:
        return "unset"
    return "''" if value == "" else str(value)


def _normalize(argv: Sequence[str]) -> list[str]:
    """--label_fraction=x -> --label-fraction=x (config keys keep their underscores)."""
    out = []
    for i, a in enumerate(argv):
        if a == "--":
            return out + list(argv[i:])
        if a.startswith("--") and not a.startswith("--config."):
            name, eq, value = a.partition("=")
            a = name.replace("_", "-") + eq + value
        out.append(a)
    return out


def build_parser(spec: type, *, prog: str, doc: str | None, config: bool, epilog: str | None):
    parser = _Parser(
        prog=prog,
        description=doc,
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    if config:
        parser.add_argument(
            "--config", metavar="FILE", required=True, help="Config file defining get_config()."
        )
    hints = typing.get_type_hints(spec)
    for f in dataclasses.fields(spec):
        meta, tp = f.metadata, hints[f.name]
        text = meta.get("help", "").replace("%", "%%")
        kw: dict[str, Any] = {"type": _converter(tp), "choices": meta.get("choices")}
        required = f.default is dataclasses.MISSING
        if meta.get("positional"):
            one_of = f"; one of {', '.join(map(str, kw['choices']))}" if kw["choices"] else ""
            parser.add_argument(
                f.name, metavar=f.name, help=f"{text} ({type_name(tp)}{one_of})", **kw
            )
            continue
        if _strip_none(tp) is bool:
            kw.update(nargs="?", const=True, metavar="true|false")
        where = "required" if required else f"default: {show(f.default)}".replace("%", "%%")
        parser.add_argument(
            flag(f.name),
            dest=f.name,
            default=None,
            required=required,
            help=f"{text} ({type_name(tp)}; {where})",
            **kw,
        )
    return parser


def parse(spec: type, argv: Sequence[str], *, prog: str, doc: str | None = None, config=False):
    """(args, cfg): the parsed `spec` instance and, with `config`, the loaded Config (else None).
    Usage errors print one line and raise SystemExit(2); --help raises SystemExit(0)."""
    argv = _normalize(argv)
    overrides: dict[str, str] = {}
    epilog = None
    if config:
        from acl_jax import config as config_lib
        from acl_jax import config_cli

        try:
            argv, overrides = config_cli.split_config_args(argv)
        except config_lib.ConfigError as e:
            _usage_exit(str(e))
        if "-h" in argv or "--help" in argv:
            path = _peek(argv, "--config")
            cfg = _load(path, overrides) if path else config_lib.Config()
            epilog = config_help(cfg, path or "acl_jax.config's defaults")
    parser = build_parser(spec, prog=prog, doc=doc, config=config, epilog=epilog)
    ns, extra = parser.parse_known_args(argv)
    if extra:
        _unknown(extra[0], parser)
    values = {k: v for k, v in vars(ns).items() if v is not None}
    cfg_path = values.pop("config", None) if config else None
    for f in dataclasses.fields(spec):
        if f.name not in values and f.default is dataclasses.MISSING:
            _usage_exit(f"{f.name if f.metadata.get('positional') else flag(f.name)} is required")
    if config and cfg_path is None:
        _usage_exit("--config FILE is required")
    return spec(**values), (_load(cfg_path, overrides) if config else None)


def _peek(argv: Sequence[str], name: str) -> str | None:
    for i, a in enumerate(argv):
        if a == name and i + 1 < len(argv):
            return argv[i + 1]
        if a.startswith(name + "="):
            return a.split("=", 1)[1]
    return None


def _load(path: str, overrides: dict[str, str]):
    from acl_jax import config_cli
    from acl_jax.config import load_config

    try:
        return config_cli.apply_overrides(load_config(path), overrides)
    except ValueError as e:  # ConfigError, or a section's own check of its values
        _usage_exit(str(e))


def _unknown(token: str, parser: argparse.ArgumentParser) -> typing.NoReturn:
    if not token.startswith("-"):
        _usage_exit(f"unexpected argument {token!r}")
    name = token.split("=", 1)[0]
    known = [s for a in parser._actions for s in a.option_strings if s.startswith("--")]
    close = difflib.get_close_matches(name, known, n=1)
    _usage_exit(f"unknown flag {name}" + (f" (did you mean {close[0]}?)" if close else ""))


def config_help(cfg: Any, source: str) -> str:
    """Every config field as `--config.KEY  TYPE  VALUE  # comment`, VALUE from `cfg`."""
    from acl_jax.config_cli import field_rows

    rows = [(f"--config.{k}", t, show(v), c) for k, t, v, c in field_rows(cfg)]
    w0, w1 = (max(len(r[i]) for r in rows) for i in range(2))
    lines = [f"  {k:<{w0}}  {t:<{w1}}  {v}" + (f"  # {c}" if c else "") for k, t, v, c in rows]
    head = f"config fields (set with --config.KEY=VALUE; values shown: {source}):"
    return "\n".join([head, *lines])


def run(
    spec: type,
    body: Callable[..., Any],
    *,
    prog: str,
    doc: str | None = None,
    argv: Sequence[str] | None = None,
    errors: tuple[type[BaseException], ...] = (),
    config: bool = False,
) -> int:
    """Parses `argv` (default sys.argv[1:]) into `spec`, calls `body(args)` (`body(args, cfg)`
    with `config`) and returns the exit status (module docstring)."""
    argv = sys.argv[1:] if argv is None else argv
    try:
        args, cfg = parse(spec, argv, prog=prog, doc=doc, config=config)
    except SystemExit as e:
        return int(e.code or 0)
    from absl import flags

    flags.FLAGS.mark_as_parsed()  # Grain's worker processes read absl flags
    try:
        body(args, cfg) if config else body(args)
    except UsageError as e:
        print(f"error: {e} (see --help)", file=sys.stderr)
        return 2
    except (Failure, *errors) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0
