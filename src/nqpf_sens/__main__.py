from nqpf_sens.cli import console

console()
