from studies import study
from studies.multi_dsprites.definition import STUDY

study.main(STUDY)
