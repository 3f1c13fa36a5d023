"""AudioSocket: sans-IO codec, asyncio server, 20 ms pacer.

codec       frames <-> bytes (no I/O)
session     what a voice session codes against: CallAudio, AudioOutput, events
pacer       OutputQueue (reframing, clear) and the drift-free 20 ms Pacer
router      UUID -> session: expected outbound, announced inbound, replays refused
connection  one routed call: CallAudio over a socket, its transport tasks
server      the listener Asterisk connects to, stats, staged shutdown
"""
