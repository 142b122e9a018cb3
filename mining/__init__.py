"""leakwatt mining: corpus, cloning, detectors (rules), scanning and history."""
