"""Trainer front doors on the one episode contract: TRL (``integrations.trl``), OpenEnv
(``integrations.openenv``) and concurrent rollouts (``integrations.rollouts``). Each imports its
library only when used."""
