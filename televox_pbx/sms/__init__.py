"""SMS over the trunk (issue 16): SIP MESSAGE through Asterisk, one segment per message."""
