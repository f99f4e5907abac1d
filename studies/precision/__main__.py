from studies import study
from studies.precision.definition import STUDY

study.main(STUDY)
