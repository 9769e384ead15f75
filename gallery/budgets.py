"""Team budgets: a monthly cap for the team and per member, checked and reserved atomically
when tasks are submitted (SPEC §6)."""


class BudgetExceeded(Exception):
    """A submission's reserved cost would pass what is left of a budget; nothing was created.
    `message` is the sentence shown in the form (and in the API's 402 answer)."""

    def __init__(self, message):
        super().__init__(message)
        self.message = message
