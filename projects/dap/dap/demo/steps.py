"""What each of the demo's stages does (:mod:`.stages` runs them): make
the benchmark, train a config, make and score the CAM pseudo boxes, and
fine-tune DAP and CLS through the low-data study's engine."""
import hashlib
import json
import os
import os.path as osp
import shutil
from typing import List, Sequence

from mmengine.config import Config

from ..fewshot import runs, sweep
from . import benchmark
from .presets import DemoConfigs
from .progress import ProgressBar
from .stages import Pipeline, ToolError, header, last_metric, tool_env

#: the option that gives a detector the classifier's weights (CLS init)
BACKBONE = 'model.backbone.init_cfg.checkpoint'
#: step 4's sweep (tools/fewshot_sweep.py's options): what the demo runs
STEP4 = dict(
    full=True,
    on_change='restart',
    keep_checkpoints=False,
    quiet=True,
    title='DAP demo, step 4: DAP vs CLS on mini-VOC',
    description='Made by the demo through the engine of '
    '`tools/fewshot_sweep.py`.',
    ylabel='mini-VOC test AP50 (%)',
    full_label='full trainval')


def save_config(cfg: Config, folder: str) -> str:
    """``cfg`` dumped into ``folder`` under its file's name: what runs."""
    path = osp.join(folder, osp.basename(cfg.filename))
    cfg.dump(path)
    return path


def data_inputs(root: str, seed: int, sizes: dict) -> dict:
    """What decides the generated data: the generator's code, its sizes,
    seed and folder."""
    with open(benchmark.__file__, 'rb') as f:
        code = hashlib.sha256(f.read()).hexdigest()
    return dict(code=code, data=sizes, seed=seed, root=root)


def make_data(root: str, seed: int, sizes: dict) -> dict:
    """mini-ImageNet and mini-VOC in a fresh ``root``."""
    shutil.rmtree(root, ignore_errors=True)
    print(f'  {sizes}')
    return dict(paths=benchmark.make_demo_data(root, seed, **sizes))


def train(pipe: Pipeline,
          out: str,
          cfg: Config,
          checkpoint: str,
          top1: bool = False) -> dict:
    """``cfg`` saved into ``out`` and trained there by tools/train.py; its
    last checkpoint kept as ``out/checkpoint`` (and with ``top1``, the last
    validation top-1 accuracy as ``val_top1``)."""
    folder = osp.basename(out)
    pipe.tool(folder,
              ['tools/train.py',
               save_config(cfg, out), '--work-dir', out],
              ProgressBar(1, folder))
    last = runs.last_checkpoint(out)
    if last is None:
        raise ToolError(f'no checkpoint in {out}')
    result = dict(checkpoint=osp.join(out, checkpoint))
    shutil.copyfile(last, result['checkpoint'])
    if top1:
        result['val_top1'] = last_metric(out, 'accuracy/top1')
        print(f'  val top-1 accuracy {result["val_top1"]:.1f}%')
    print(f'  -> {result["checkpoint"]}')
    return result


def pseudo_boxes(pipe: Pipeline, out: str, cfg: Config, checkpoint: str,
                 images: str) -> dict:
    """Step 2 in ``out``: CAM boxes for mini-ImageNet (``images``), their
    score against the true boxes, and a few browsed."""
    config = save_config(cfg, out)
    boxes = osp.join(out, 'pseudo_boxes.dapbox')
    truth = osp.join(images, 'meta', 'train_boxes.json')
    train = osp.join(images, 'train')
    pipe.tool('step2_generate_pseudo_boxes', [
        'tools/generate_pseudo_boxes.py', config, '--checkpoint', checkpoint,
        '--work-dir', out, '--out', boxes
    ], ProgressBar(1, 'CAM boxes'))
    pipe.tool('step2_eval_pseudo_boxes', [
        'tools/analysis_tools/eval_pseudo_boxes.py', boxes, truth, '--out',
        osp.join(out, 'quality.json')
    ])
    pipe.tool('step2_browse', [
        'tools/analysis_tools/browse_pseudo_boxes.py', boxes, '--data-root',
        train, '--out-dir',
        osp.join(out, 'browse'), '--num', '8', '--random', '--config', config,
        '--checkpoint', checkpoint
    ])
    with open(osp.join(out, 'quality.json')) as f:
        q = json.load(f)
    print(f'  {q["num_images"]} images, {q["boxes_per_image"]:.2f} '
          'boxes/image; GT-known acc@0.5 '
          f'{100 * q["gt_known_acc@0.5"]:.1f}%, recall@0.5 '
          f'{100 * q["recall@0.5"]:.1f}%, precision@0.5 '
          f'{100 * q["precision@0.5"]:.1f}%')
    return dict(
        box_file=boxes,
        quality=q,
        true_boxes=truth,
        checkpoint=checkpoint,
        config=config,
        images=train)


def finetune(pipe: Pipeline, configs: DemoConfigs, voc_root: str,
             classifier: str, dap: str, shots: Sequence[int],
             seeds: Sequence[int], workers: int, threads: int) -> List[dict]:
    """Step 4: the DAP (``dap``: its detector) and CLS (``classifier``:
    its weights) inits over k-shot and full mini-VOC, through the engine of
    tools/fewshot_sweep.py in ``step4_finetune``, ``workers`` runs at a
    time of ``threads`` threads; each run's result."""
    work_dir = osp.join(pipe.work_dir, 'step4_finetune')
    os.makedirs(osp.join(work_dir, 'inits'), exist_ok=True)
    weights = dict(dap={'load_from': dap}, cls={BACKBONE: classifier})
    inits = []
    for init in ('dap', 'cls'):
        files = [
            save_config(
                configs.build(key, voc_root, weights[init]),
                osp.join(work_dir, 'inits'))
            for key in (f'finetune_{init}_fewshot', f'finetune_{init}')
        ]
        inits.append(runs.InitSpec(init, *files))
    total = (len(shots) + 1) * len(seeds) * len(inits)
    header(f'[step 4/4] fine-tuning DAP and CLS inits on mini-VOC: {total} '
           f'runs (k={list(shots)} + full, seeds {list(seeds)}), {workers} '
           "at a time, through tools/fewshot_sweep.py's engine")
    spec = sweep.SweepSpec(
        work_dir,
        inits,
        shots,
        seeds,
        jobs=workers,
        env=tool_env(pipe.repo, threads),
        **STEP4)
    bar = ProgressBar(total, 'fine-tune runs')
    try:
        outcome = sweep.run_sweep(spec, lambda n, _, note: bar.update(n, note))
    except (sweep.SweepError, OSError, ValueError) as e:
        raise ToolError(f'step 4: {e}') from None
    bar.close()
    if outcome.counts['finished'] == total:
        print('  every run had finished before: nothing to run')
    if outcome.failed:
        raise ToolError(f'{len(outcome.failed)} fine-tuning runs failed; '
                        f'first:\n{outcome.failed[0]}')
    return outcome.results
