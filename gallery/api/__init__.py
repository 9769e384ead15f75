"""The Team API: an EvoLink-compatible gateway (SPEC §5). Scripts written for EvoLink change their
base URL and key and nothing else; the studio answers in EvoLink's shapes and runs the tasks in
the team's history, gallery, costs and budget."""
