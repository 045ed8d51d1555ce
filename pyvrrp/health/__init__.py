"""Health tracking: pure rise/fall state machines (fsm.py) and, in the runtime, their runners."""
