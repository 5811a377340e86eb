"""ftharness: should we finetune this model, and how? A measured, repeatable, CI-gated answer."""

__version__ = "0.1.0"
