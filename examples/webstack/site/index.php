<?php
// Rendered by PHP-FPM behind Apache. Shows which PHP answered and when the timer last ran.
$tick = @file_get_contents('/var/lib/webstack/last-tick');
header('Content-Type: text/plain; charset=utf-8');
printf("hello from PHP %s (%s)\n", PHP_VERSION, PHP_SAPI);
printf("scheduler last ran: %s\n", $tick === false ? 'not yet' : trim($tick));
