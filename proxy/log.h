/* proxy/log.h — one-line logs to stderr with a UTC timestamp and a level.
 * Thread-safe (one write(2) per line); for events, never per byte or packet. */
#pragma once

__attribute__((format(printf, 1, 2))) void log_info(const char *fmt, ...);
__attribute__((format(printf, 1, 2))) void log_warn(const char *fmt, ...);
__attribute__((format(printf, 1, 2))) void log_error(const char *fmt, ...);
