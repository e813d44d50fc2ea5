"""One sync run, destination-neutral: runner, outcome, events, delivery, commit."""
