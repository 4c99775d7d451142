"""The learner: PPO, behaviour cloning, evaluation and the checkpoints they share."""
