"""Evaluate a checkpoint with the config's test loop (mmengine ``Runner``).

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--cfg-options ..]
    bash tools/dist_test.sh CONFIG CHECKPOINT 8
"""
import argparse

from projects.dap.dap.utils.cli import (add_runner_args, build_runner,
                                        load_config, parse_runner_args)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Test a DAP model')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    add_runner_args(parser, work_dir_help='where logs and metrics go')
    return parse_runner_args(parser, argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    cfg = load_config(args)
    cfg.load_from = args.checkpoint
    cfg.resume = False
    build_runner(cfg, args.launcher).test()


if __name__ == '__main__':
    main()
