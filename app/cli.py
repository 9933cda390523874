"""`modmt`: the application's one command, with every stage's commands and the demo under it.

This is the top layer: the only place that imports all stages. Each stage's commands import their
heavy dependencies (torch, transformers, optimum) only when they run, so `modmt --help` and
`modmt translate` work in a runtime-only install.
"""
import click

from modmt.app.demo import demo_command
from modmt.benchmarks.cli import bench_group, tune_command
from modmt.export.cli import export_command
from modmt.runtime.cli import translate_command
from modmt.runtime.command_line import run_cli
from modmt.runtime.server_cli import serve_command
from modmt.train.cli import data_group, model_group, train_group


@click.group()
@click.version_option(package_name="modmt")
def modmt():
    """modmt: modular multilingual MT with LLMs, from adapters to ONNX deployments.

    One LoRA per input language and one per output language, trained English-centric, are merged
    per direction (w_in:w_out) and served on ONNX Runtime. Add --debug to any command for tracebacks.
    """


for command in (train_group, export_command, translate_command, serve_command, tune_command, bench_group, data_group,
                model_group, demo_command):
    modmt.add_command(command)


def main():
    run_cli(modmt, "modmt")
