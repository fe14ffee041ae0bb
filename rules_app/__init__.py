"""Business rules applied to the home feed after ranking (issue 13, FEAT-005): sponsored
campaigns, diversity, blocklists and boosts, edited in the admin or the staff API."""
