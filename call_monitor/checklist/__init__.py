"""The supervisors' charter checklist (issue 10): pure, no I/O but reading the form file.

- :mod:`.form`: the form as data (stages 맞이 / 응대 / 마무리, items, when each applies),
  parsed and validated from TOML text; ``default_form.toml`` is the shipped one.
- :mod:`.files`: the form file read (the shipped one, or ``checklist.form``).
- :mod:`.facts`: what a stored or judged call says to the form: which items apply, which
  are measured and pre-filled.
- :mod:`.scoring`: a submission checked and scored (weighted yes over applicable items).
- :mod:`.sampling`: the reproducible "next call to score" per staff member and month.
"""
