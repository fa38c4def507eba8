-- The indexes that serve exactly what a person waits for: a message list filtered by
-- event type, a message's attempts, an endpoint's attempts (and its stats, read from
-- them), and the upkeep's search for payloads past their retention.

CREATE INDEX messages_by_event_type ON messages (app_id, event_type, id);
CREATE INDEX attempts_by_message ON attempts (msg_id, id);
CREATE INDEX attempts_by_endpoint ON attempts (endpoint_id, id);
CREATE INDEX messages_payload_until ON messages (payload_until) WHERE payload_until IS NOT NULL;
