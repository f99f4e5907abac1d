from studies import study
from studies.tetrominoes_cpu.definition import STUDY

study.main(STUDY)
