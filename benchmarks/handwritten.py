"""The baseline for ``benchmarks/run.py``: what a data scientist would write by hand.

One plain script, no framework: read the raw CSV with pandas, split it stratified 70/15/15 with
scikit-learn, scale with ``StandardScaler``, train a torch MLP inside a small LightningModule
with early stopping, a CSV logger and a best-model checkpoint, then score the test split.
Every knob that changes the work done (sizes, epochs, batch size, patience, determinism) comes
from the command line, and ``run.py`` fills it from ``shipyard config <project> --json`` so
both sides train the same model for the same number of epochs.

Prints one JSON line on stdout: test metrics, epochs run and a few internal timings.
"""

from __future__ import annotations

import argparse
import json
import time

_T0 = time.perf_counter()

import lightning.pytorch as L  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint  # noqa: E402
from lightning.pytorch.loggers import CSVLogger  # noqa: E402
from sklearn.metrics import accuracy_score, f1_score, roc_auc_score  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from torch import nn  # noqa: E402
from torch.utils.data import DataLoader, TensorDataset  # noqa: E402

_IMPORTED = time.perf_counter()

ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU, "tanh": nn.Tanh, "silu": nn.SiLU}
OPTIMIZERS = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "sgd": torch.optim.SGD}


class Classifier(L.LightningModule):
    def __init__(self, n_in: int, hidden: list[int], dropout: float, activation: str, optim: str, lr: float, wd: float):
        super().__init__()
        layers: list[nn.Module] = []
        width = n_in
        for size in hidden:
            layers += [nn.Linear(width, size), ACTIVATIONS[activation](), nn.Dropout(dropout)]
            width = size
        layers.append(nn.Linear(width, 1))
        self.net = nn.Sequential(*layers)
        self.optim, self.lr, self.wd = optim, lr, wd
        self.loss = nn.BCEWithLogitsLoss()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).squeeze(1)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = self.loss(self(x), y)
        self.log("train/loss", loss, on_step=False, on_epoch=True, prog_bar=True)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val/loss", self.loss(self(x), y), prog_bar=True)

    def configure_optimizers(self):
        return OPTIMIZERS[self.optim](self.parameters(), lr=self.lr, weight_decay=self.wd)


def loader(x: np.ndarray, y: np.ndarray, batch_size: int, shuffle: bool, seed: int) -> DataLoader:
    data = TensorDataset(torch.tensor(x, dtype=torch.float32), torch.tensor(y, dtype=torch.float32))
    return DataLoader(data, batch_size=batch_size, shuffle=shuffle, generator=torch.Generator().manual_seed(seed))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--csv", required=True)
    p.add_argument("--target", default="target")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--val", type=float, default=0.15)
    p.add_argument("--test", type=float, default=0.15)
    p.add_argument("--hidden", type=int, nargs="+", default=[32, 16])
    p.add_argument("--dropout", type=float, default=0.1)
    p.add_argument("--activation", default="relu")
    p.add_argument("--optimizer", default="adamw")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--weight-decay", type=float, default=0.0)
    p.add_argument("--max-epochs", type=int, default=40)
    p.add_argument("--min-epochs", type=int, default=1)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--patience", type=int, default=6)
    p.add_argument("--min-delta", type=float, default=0.0)
    p.add_argument("--no-early-stopping", action="store_true")
    p.add_argument("--deterministic", action="store_true")
    p.add_argument("--log-every-n-steps", type=int, default=5)
    p.add_argument("--workdir", required=True)
    args = p.parse_args()

    L.seed_everything(args.seed, verbose=False)
    df = pd.read_csv(args.csv)
    x_all, y_all = df.drop(columns=[args.target]), df[args.target]
    n = len(df)
    # Same arithmetic as a 70/15/15 split done in two steps: hold out test, then validation.
    rest_x, test_x, rest_y, test_y = train_test_split(
        x_all, y_all, test_size=round(n * args.test), random_state=args.seed, stratify=y_all
    )
    train_x, val_x, train_y, val_y = train_test_split(
        rest_x, rest_y, test_size=round(n * args.val), random_state=args.seed, stratify=rest_y
    )
    scaler = StandardScaler().fit(train_x)
    xs = [scaler.transform(f) for f in (train_x, val_x, test_x)]
    ys = [s.to_numpy() for s in (train_y, val_y, test_y)]
    _data = time.perf_counter()

    net_args = {
        "n_in": xs[0].shape[1],
        "hidden": args.hidden,
        "dropout": args.dropout,
        "activation": args.activation,
        "optim": args.optimizer,
        "lr": args.lr,
        "wd": args.weight_decay,
    }
    model = Classifier(**net_args)
    checkpoint = ModelCheckpoint(dirpath=args.workdir, filename="best", monitor="val/loss", mode="min", save_last=True)
    callbacks: list = [checkpoint]
    if not args.no_early_stopping:
        stop = EarlyStopping(monitor="val/loss", mode="min", patience=args.patience, min_delta=args.min_delta)
        callbacks.append(stop)
    trainer = L.Trainer(
        accelerator="cpu",
        devices=1,
        max_epochs=args.max_epochs,
        min_epochs=args.min_epochs,
        deterministic=args.deterministic,
        log_every_n_steps=args.log_every_n_steps,
        callbacks=callbacks,
        logger=CSVLogger(args.workdir, name="logs"),
        default_root_dir=args.workdir,
        enable_model_summary=False,
    )
    trainer.fit(
        model,
        loader(xs[0], ys[0], args.batch_size, True, args.seed),
        loader(xs[1], ys[1], 256, False, args.seed),
    )
    _fit = time.perf_counter()

    best = Classifier.load_from_checkpoint(checkpoint.best_model_path, **net_args).eval()
    with torch.no_grad():
        proba = torch.sigmoid(best(torch.tensor(xs[2], dtype=torch.float32))).numpy()
    pred = (proba >= 0.5).astype(int)
    result = {
        "test/accuracy": accuracy_score(ys[2], pred),
        "test/f1": f1_score(ys[2], pred),
        "test/roc_auc": roc_auc_score(ys[2], proba),
        "epochs": trainer.current_epoch,
        "rows": {"train": len(ys[0]), "val": len(ys[1]), "test": len(ys[2])},
        "seconds": {
            "imports": round(_IMPORTED - _T0, 3),
            "data": round(_data - _IMPORTED, 3),
            "fit": round(_fit - _data, 3),
            "test": round(time.perf_counter() - _fit, 3),
        },
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
