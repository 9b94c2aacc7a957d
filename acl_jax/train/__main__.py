"""Pretrains one encoder; a rerun with the same --workdir resumes from its latest checkpoint.

  python -m acl_jax.train --config configs/NAME.py --workdir DIR [--config.a.b=VALUE ...]

Multi-host: on Cloud TPU pass --distributed (JAX finds the coordinator itself); elsewhere pass
--coordinator=HOST:PORT --num-processes=N --process-id=I to every process.
"""

from __future__ import annotations

from acl_jax.train import preemption

preemption.install()  # before anything slow: a SIGTERM during startup then exits 0

import dataclasses  # noqa: E402
import sys  # noqa: E402

from absl import logging  # noqa: E402

from acl_jax import cli  # noqa: E402
from acl_jax.config import Config  # noqa: E402

# A process that stops sending heartbeats (killed, or its host gone) ends the others after this
# long, with a message naming it, instead of JAX's 100 s during which they sit in a collective.
HEARTBEAT_TIMEOUT_S = 10


@dataclasses.dataclass(frozen=True, kw_only=True)
class TrainArgs:
    workdir: str = cli.arg(help="Checkpoints, metrics.jsonl and tb/ go here; a rerun resumes.")
    distributed: bool = cli.arg(False, help="Call jax.distributed.initialize() (Cloud TPU).")
    coordinator: str | None = cli.arg(None, help="HOST:PORT of process 0 (multi-process runs).")
    num_processes: int | None = cli.arg(None, help="Number of processes (with --coordinator).")
    process_id: int | None = cli.arg(None, help="This process's index (with --coordinator).")


def pretrain(a: TrainArgs, cfg: Config) -> None:
    multi = (a.coordinator, a.num_processes, a.process_id)
    if any(v is not None for v in multi) and None in multi:
        raise cli.UsageError("--coordinator, --num-processes and --process-id go together")
    logging.set_verbosity(logging.WARNING)  # Orbax logs every save at INFO
    import jax

    if a.coordinator:
        jax.distributed.initialize(
            a.coordinator,
            a.num_processes,
            a.process_id,
            heartbeat_timeout_seconds=HEARTBEAT_TIMEOUT_S,
        )
    elif a.distributed:
        jax.distributed.initialize(heartbeat_timeout_seconds=HEARTBEAT_TIMEOUT_S)
    from acl_jax.train.loop import ConfigMismatch, NonFiniteLoss, train

    try:
        summary = train(cfg, a.workdir)
    except (NonFiniteLoss, ConfigMismatch, FileNotFoundError, ValueError) as e:
        raise cli.Failure(e) from e
    if jax.process_index() == 0 and summary["checkpoints"]:
        print(f"done: step {summary['step']}, checkpoints in {summary['checkpoints']}", flush=True)


def main(argv: list[str] | None = None) -> int:
    """The command line; returns the exit status (acl_jax.cli)."""
    return cli.run(
        TrainArgs, pretrain, prog="python -m acl_jax.train", doc=__doc__, argv=argv, config=True
    )


if __name__ == "__main__":
    sys.exit(main())
