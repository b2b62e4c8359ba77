"""The simulated ReTreasure business: ground truth, fake marketplace servers and file drops."""
