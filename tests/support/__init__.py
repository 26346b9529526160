"""What tests share: symbol specs, price sources, waiting helpers, ports, factories and the worlds
(bot, loop, API, emulator, sandbox) that several test folders build on.

Test modules import from here and never from one another or from a ``conftest``; fixtures stay in
the ``conftest.py`` files, which import their building blocks from here.
"""
