"""`python -m acl_jax.train --config configs/NAME.py --workdir DIR [--config.a.b=value ...]`

Multi-host: on Cloud TPU pass --distributed (JAX finds the coordinator itself); elsewhere pass
--coordinator=HOST:PORT --num_processes=N --process_id=I to every process.
"""

from __future__ import annotations

from acl_jax.train import preemption

preemption.install()  # before anything slow: a SIGTERM during startup then exits 0

import sys  # noqa: E402

from absl import app, flags, logging  # noqa: E402

from acl_jax.config import ConfigError, apply_overrides, load_config, split_config_args  # noqa: E402

flags.DEFINE_string("config", None, "Config file defining get_config(), e.g. configs/tiny.py.")
flags.DEFINE_string("workdir", None, "Checkpoints, metrics.jsonl and tb/ go here; resumes.")
flags.DEFINE_bool("distributed", False, "Call jax.distributed.initialize() (auto-detected).")
flags.DEFINE_string("coordinator", None, "HOST:PORT of process 0 for multi-process runs.")
flags.DEFINE_integer("num_processes", None, "Number of processes (with --coordinator).")
flags.DEFINE_integer("process_id", None, "This process's index (with --coordinator).")
flags.mark_flags_as_required(["config", "workdir"])
FLAGS = flags.FLAGS
# A process that stops sending heartbeats (killed, or its host gone) ends the others after this
# long, with a message naming it, instead of JAX's 100 s during which they sit in a collective.
HEARTBEAT_TIMEOUT_S = 10

_OVERRIDES: dict[str, str] = {}


def _parse(argv: list[str]) -> list[str]:
    rest, overrides = split_config_args(argv)
    _OVERRIDES.update(overrides)
    return FLAGS(rest)


def main(argv: list[str]) -> None:
    del argv
    logging.set_verbosity(logging.WARNING)  # Orbax logs every save at INFO
    import jax

    if FLAGS.coordinator:
        jax.distributed.initialize(
            FLAGS.coordinator,
            FLAGS.num_processes,
            FLAGS.process_id,
            heartbeat_timeout_seconds=HEARTBEAT_TIMEOUT_S,
        )
    elif FLAGS.distributed:
        jax.distributed.initialize(heartbeat_timeout_seconds=HEARTBEAT_TIMEOUT_S)
    try:
        cfg = apply_overrides(load_config(FLAGS.config), _OVERRIDES)
    except ConfigError as e:
        sys.exit(f"config error: {e}")
    from acl_jax.train.loop import ConfigMismatch, NonFiniteLoss, train

    try:
        summary = train(cfg, FLAGS.workdir)
    except (NonFiniteLoss, ConfigMismatch, FileNotFoundError, ValueError) as e:
        sys.exit(f"error: {e}")
    if jax.process_index() == 0 and summary["checkpoints"]:
        print(f"done: step {summary['step']}, checkpoints in {summary['checkpoints']}", flush=True)


if __name__ == "__main__":
    app.run(main, flags_parser=_parse)
