-- luacheck lua plugin test   (Debian: apt-get install lua-check)
std = "luajit"
globals = { "vim" }
max_line_length = 120
