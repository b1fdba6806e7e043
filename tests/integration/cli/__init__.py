"""The qerberos command as operators run it: real processes, their output and exit codes."""
