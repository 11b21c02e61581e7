"""The tournament's rules as pure functions: anonymize, budget, ballot, scoring, rating, selection.

No asyncio, no SQL, no I/O, no model calls; randomness comes in as a ``random.Random``. docs/rules.md explains
every rule and constant for users.
"""
