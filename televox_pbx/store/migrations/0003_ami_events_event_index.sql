-- `televox events tail --filter Event=...` and the dashboard filter by event name.
CREATE INDEX ami_events_event ON ami_events(event, id);
