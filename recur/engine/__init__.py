"""The engines that run a compiled plan, and the array backends they run on."""
