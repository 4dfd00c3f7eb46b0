"""Analysis behind the tools: FLOP counting (`flops`), the originals' counters and published counts
(`published`), throughput (`benchmark`), the zoo's families and names (`zoo`), and the zoo report (`report`)."""
