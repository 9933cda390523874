"""How every modmt command runs: libraries quiet unless --verbose, a user's error as one line on stderr, never a traceback.

The command line is the edge where the process is configured: only here are warnings filtered,
loggers silenced and environment variables (MODMT_DEBUG, MODMT_VERBOSE) read.
"""
import logging
import os
import sys
import traceback

import click

from modmt.runtime.errors import ModmtError

LIBRARY_LOGGERS = ("torch", "transformers", "optimum", "accelerate", "peft", "datasets", "ray", "onnxruntime",
                   "onnxscript", "httpx", "urllib3", "filelock")


def quiet_libraries() -> None:
    """Hide what libraries print for their developers (tracer, tokenizer, Trainer, ONNX Runtime warnings).

    What a user sees is our progress, results and warnings; `--verbose` (or --debug) shows it all.
    Our own messages go through the "modmt" logger (see show_progress) or click/tqdm, so they stay.
    """
    import warnings

    warnings.filterwarnings("ignore")
    os.environ["PYTHONWARNINGS"] = "ignore"  # also in subprocesses (torchrun workers)
    logging.getLogger().setLevel(logging.ERROR)  # library loggers inherit it: errors still show
    for name in LIBRARY_LOGGERS:                 # those that set a level of their own
        logging.getLogger(name).setLevel(logging.ERROR)
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    try:  # ONNX Runtime sessions: errors only
        import onnxruntime

        onnxruntime.set_default_logger_severity(3)
    except ImportError:
        pass


def show_progress() -> None:
    """The library modules' progress lines (logging.getLogger(__name__).info under "modmt"): on stderr, as they are."""
    logger = logging.getLogger("modmt")
    if not any(getattr(h, "modmt_progress", False) for h in logger.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        handler.modmt_progress = True
        logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False


def run_cli(command: click.Command, prog_name: str) -> None:
    """Run a click command: user errors become `prog: error: ...` and exit 2, never a traceback.

    `--debug` (anywhere on the command line) or MODMT_DEBUG=1 re-raises with the full traceback;
    `--verbose` or MODMT_VERBOSE=1 shows the libraries' own warnings, hidden by default.
    """
    args = sys.argv[1:]
    debug = "--debug" in args or os.environ.get("MODMT_DEBUG") == "1"
    verbose = debug or "--verbose" in args or os.environ.get("MODMT_VERBOSE") == "1"
    args = [a for a in args if a not in ("--debug", "--verbose")]
    if not verbose:
        quiet_libraries()
    show_progress()
    try:
        command.main(args=args, prog_name=prog_name, standalone_mode=False)
    except click.exceptions.Exit as e:
        sys.exit(e.exit_code)
    except click.Abort:
        click.echo(f"{prog_name}: aborted", err=True)
        sys.exit(130)
    except click.ClickException as e:  # usage errors: one line, as click words them, and where to look
        hint = f" (see `{prog_name} ... --help`)" if isinstance(e, click.UsageError) else ""
        message = " ".join(e.format_message().split())
        click.echo(f"{prog_name}: error: {message}{hint}", err=True)
        sys.exit(e.exit_code)
    except ModmtError as e:
        if debug:
            traceback.print_exc()
        click.echo(f"{prog_name}: error: {e}", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        click.echo(f"{prog_name}: interrupted", err=True)
        sys.exit(130)
    except Exception as e:  # a bug, not a user error: still one line unless --debug
        if debug:
            traceback.print_exc()
        click.echo(f"{prog_name}: unexpected error: {type(e).__name__}: {e} "
                   "(rerun with --debug for the traceback and report it)", err=True)
        sys.exit(1)
