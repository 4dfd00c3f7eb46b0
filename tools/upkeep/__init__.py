"""The repository's upkeep code (not installed): what keeps its documents current.

`tools/report.py` and `benchmarks/targets.py` import it (tools/ on the path; the scripts put it there themselves):
the speed targets (`targets`, with `profile`'s time split), the zoo report's rows and tables (`zoo_report`, with the
fast-path check `fastpath` and the picture `zoo_plot`), our models on the golden fixtures (`faithfulness`) and the
generated tables of the model cards (`cards`). What a family records for them lives in its model file
(`vssm.models._records`).
"""
