"""Secret manager backends behind one Protocol; the only place boto3 and hvac are imported."""
