import sys

from studies import study
from studies.demo.definition import STUDY, cost_main

if sys.argv[1:2] == ["cost"]:  # the study's own command: step cost per image of candidates relative to the base
    cost_main(sys.argv[2:])
else:
    study.main(STUDY)
