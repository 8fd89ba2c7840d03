"""The cloud's MQTT side (docs/mqtt.md): batches consumed from the broker through the
same ingest as HTTP, acknowledgements, the desired state retained per device, presence
from birth and will, and the broker credentials and ACL of each device."""
