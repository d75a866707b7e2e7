"""Tasks made in Python (not from a shipped config) that misbehave on purpose, for the worker
fault tests. Worker processes import this module by name, as they would a user's."""

import os
import time

from tasks.functions import Arm


class SlowArm(Arm):
    """The arm, taking ``delay`` seconds per batch (time to kill a worker mid-batch)."""

    def __init__(self, delay: float = 1.0, **kwargs) -> None:
        super().__init__(**kwargs)
        self.delay = delay

    def evaluate(self, genomes, seeds):
        time.sleep(self.delay)
        return super().evaluate(genomes, seeds)


class HangOnceArm(Arm):
    """The arm; the first worker to claim ``flag`` (a file, removed on claim) hangs."""

    def __init__(self, flag: str, **kwargs) -> None:
        super().__init__(**kwargs)
        self.flag = flag

    def evaluate(self, genomes, seeds):
        try:
            os.remove(self.flag)
        except FileNotFoundError:
            pass
        else:
            time.sleep(600)
        return super().evaluate(genomes, seeds)
