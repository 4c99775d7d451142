"""Townlet's Optuna sweeper for Hydra: `hydra/sweeper=townlet_optuna` (see hparams_search/)."""
