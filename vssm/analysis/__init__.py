"""What the tools run over a user's model: FLOP counting (`flops`, on `counting`; the originals' counters and how
ours agrees with their published counts: `published`), throughput (`benchmark`), its plot (`plots`), a GPU's time
predicted on the CPU (`roofline`) and the tables the tools print (`tables`)."""
