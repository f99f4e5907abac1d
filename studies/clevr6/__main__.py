from studies import study
from studies.clevr6.definition import STUDY

study.main(STUDY)
