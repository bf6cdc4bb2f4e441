/*
 * clgw stand-in, not FreeSWITCH: a tiny server of FreeSWITCH's event socket (ESL, inbound mode)
 * for the freeswitch stand-in container image (scripts/standins.ts). It answers just what the
 * update agent asks (agent/src/voice/esl.ts): `auth <password>`, `api show calls count` and
 * `exit`, framed as FreeSWITCH's mod_event_socket frames them, so the agent can be tested against
 * a real container without FreeSWITCH.
 *
 * Usage: esl-standin CALLS_FILE
 *   env ESL_PORT      TCP port on 127.0.0.1 (default 8021, FreeSWITCH's)
 *   env ESL_PASSWORD  the password `auth` must give (default ClueCon, FreeSWITCH's)
 * `show calls count` answers the number held in CALLS_FILE, read anew at each question (a test
 * sets it with `podman exec CONTAINER /bin/busybox sh -c 'echo 2 > /www/calls'`). A missing,
 * unreadable or non-numeric file is answered with an `-ERR` body, never with 0: a stand-in that
 * reported "no calls" when it does not know would let an update cut calls it cannot see.
 *
 * Why C: the image holds only Debian's static busybox, whose `nc` cannot bind a chosen address
 * and whose `telnetd` negotiates telnet over a pty. Built by scripts/standins.ts with
 * `gcc -static -O2 -s` (no debug info: the same source and toolchain give the same bytes).
 *
 * The wire format: every message is a block of `Name: value` lines ended by an empty line,
 * followed by `Content-Length` bytes of body when that header is present. The server speaks
 * first (auth/request); each client command is a block too (its first line is the command).
 */
#define _GNU_SOURCE /* accept4 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* Bytes of one command block (all its lines): nothing the agent sends comes near this, and a
 * bound keeps a peer from making the stand-in buffer without end. Longer is refused and closed. */
#define MAX_COMMAND 1024
/* Connections served at once (one process each); the next waits for one of them to end. */
#define MAX_CHILDREN 32
/* A client silent this long is dropped, so a stalled peer cannot hold a slot for ever. */
#define IDLE_SECONDS 30
/* A client that does not read its answers for this long is dropped too. */
#define SEND_SECONDS 10
#define MAX_PASSWORD 256

static const char *password;
static const char *calls_file;

/* Writes all of `n` bytes; -1 when the peer is gone (EPIPE: SIGPIPE is ignored) or stalled. */
static int write_all(int fd, const char *p, size_t n) {
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

/* Sends a message; a peer that is gone ends this connection's process (nothing left to do). */
static void send_message(int fd, const char *headers, const char *body) {
  char block[MAX_COMMAND + 256];
  size_t body_len = body ? strlen(body) : 0;
  int n = body ? snprintf(block, sizeof block, "%sContent-Length: %zu\n\n", headers, body_len)
               : snprintf(block, sizeof block, "%s\n", headers);
  if (n < 0 || (size_t)n >= sizeof block) _exit(1);
  if (write_all(fd, block, (size_t)n) < 0) _exit(0);
  if (body_len && write_all(fd, body, body_len) < 0) _exit(0);
}

/* `command/reply` with its Reply-Text (`+OK …` or `-ERR …`). */
static void command_reply(int fd, const char *text) {
  char headers[256];
  snprintf(headers, sizeof headers, "Content-Type: command/reply\nReply-Text: %s\n", text);
  send_message(fd, headers, NULL);
}

/* `api/response`: the api command's output as the body. */
static void api_response(int fd, const char *body) {
  send_message(fd, "Content-Type: api/response\n", body);
}

/* What FreeSWITCH sends before it closes the socket, then the close. */
static void disconnect(int fd) {
  send_message(fd, "Content-Type: text/disconnect-notice\n",
               "Disconnected, goodbye.\n(clgw stand-in, not FreeSWITCH)\n");
  close(fd);
  _exit(0);
}

/*
 * The number in the calls file: 0 when it holds one (1 to 9 digits, then optional whitespace),
 * -1 when it cannot be read, -2 when it holds something else.
 */
static int read_calls(unsigned long *calls) {
  char text[32];
  int fd = open(calls_file, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  ssize_t n;
  do n = read(fd, text, sizeof text - 1);
  while (n < 0 && errno == EINTR);
  close(fd);
  if (n < 0) return -1;
  text[n] = '\0';
  size_t digits = strspn(text, "0123456789");
  if (digits == 0 || digits > 9 || text[digits + strspn(text + digits, " \t\r\n")] != '\0') return -2;
  *calls = strtoul(text, NULL, 10);
  return 0;
}

/* `api <command>` after auth: only `show calls count` is known. */
static void api(int fd, char *command) {
  if (strcmp(command, "show calls count") == 0) {
    unsigned long calls;
    int got = read_calls(&calls);
    char body[64];
    if (got == -1) snprintf(body, sizeof body, "-ERR no calls file\n");
    else if (got == -2) snprintf(body, sizeof body, "-ERR calls file holds no number\n");
    else snprintf(body, sizeof body, "\n%lu total.\n\n", calls); /* FreeSWITCH's own format */
    api_response(fd, body);
    return;
  }
  /* FreeSWITCH names the unknown api command by its first word. */
  command[strcspn(command, " ")] = '\0';
  char body[MAX_COMMAND + 64];
  snprintf(body, sizeof body, "-ERR %s Command not found!\n", command);
  api_response(fd, body);
}

/* One command block; `line` is its first line (the rest, headers of the command, is ignored). */
static void handle(int fd, char *line, int *authed) {
  size_t len = strlen(line);
  while (len > 0 && (line[len - 1] == ' ' || line[len - 1] == '\t')) line[--len] = '\0';

  /* As FreeSWITCH: `exit` is honoured before auth too; keywords are not case-sensitive. */
  if (strcasecmp(line, "exit") == 0) {
    command_reply(fd, "+OK bye");
    disconnect(fd);
  }
  if (!*authed) {
    if (strncasecmp(line, "auth ", 5) == 0) {
      if (strcmp(line + 5, password) == 0) {
        *authed = 1;
        command_reply(fd, "+OK accepted");
      } else {
        fprintf(stderr, "esl-standin: a client gave a wrong password; disconnected\n");
        command_reply(fd, "-ERR invalid");
        disconnect(fd);
      }
      return;
    }
  } else if (strncasecmp(line, "api ", 4) == 0) {
    api(fd, line + 4);
    return;
  }
  command_reply(fd, "-ERR command not found");
}

/* One connection, in its own process: greet, then answer command blocks until the peer leaves. */
static void serve(int fd) {
  struct timeval idle = {.tv_sec = IDLE_SECONDS}, send = {.tv_sec = SEND_SECONDS};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &idle, sizeof idle);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &send, sizeof send);
  send_message(fd, "Content-Type: auth/request\n", NULL);

  char block[MAX_COMMAND + 1];
  size_t len = 0;      /* bytes of the block so far */
  int line_start = 1;  /* the next byte starts a line: a newline there ends the block */
  int bad = 0;         /* the block holds a NUL: it is no command */
  int authed = 0;
  char in[4096];
  for (;;) {
    ssize_t n = read(fd, in, sizeof in);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) _exit(0); /* closed, reset, or idle too long: nothing to answer */
    for (ssize_t i = 0; i < n; i++) {
      char c = in[i];
      if (c == '\r') continue; /* CRLF clients (telnet) frame the same */
      if (c == '\n') {
        if (len == 0) continue; /* newlines between blocks carry nothing */
        if (line_start) {        /* an empty line: the block is complete */
          block[len] = '\0';
          block[strcspn(block, "\n")] = '\0';
          if (bad) command_reply(fd, "-ERR command not found");
          else handle(fd, block, &authed);
          len = 0;
          bad = 0;
          continue;
        }
        line_start = 1;
      } else {
        line_start = 0;
        if (c == '\0') bad = 1;
      }
      if (len >= MAX_COMMAND) {
        command_reply(fd, "-ERR command too long");
        disconnect(fd);
      }
      block[len++] = c;
    }
  }
}

/* Does nothing: it is there so that SIGCHLD interrupts accept() and ended connections are
 * reaped (and no longer counted) at once instead of at the next connection. */
static void on_child(int sig) { (void)sig; }

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: esl-standin CALLS_FILE (env ESL_PORT, ESL_PASSWORD)\n");
    return 2;
  }
  calls_file = argv[1];
  const char *port_text = getenv("ESL_PORT");
  if (!port_text || !*port_text) port_text = "8021";
  char *end;
  errno = 0;
  long port = strtol(port_text, &end, 10);
  if (errno || *end || port < 1 || port > 65535) {
    fprintf(stderr, "esl-standin: ESL_PORT '%s' is not a TCP port (1-65535)\n", port_text);
    return 2;
  }
  password = getenv("ESL_PASSWORD");
  if (!password || !*password) password = "ClueCon";
  if (strlen(password) > MAX_PASSWORD || strpbrk(password, "\r\n")) {
    fprintf(stderr, "esl-standin: ESL_PASSWORD is longer than %d bytes or holds a line break\n",
            MAX_PASSWORD);
    return 2;
  }

  /* A client that vanishes must not kill its process with SIGPIPE mid-write: write fails instead. */
  signal(SIGPIPE, SIG_IGN);
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_child;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_NOCLDSTOP; /* no SA_RESTART: accept() returns EINTR when a child ends */
  sigaction(SIGCHLD, &sa, NULL);

  int listener = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (listener < 0) {
    perror("esl-standin: socket");
    return 1;
  }
  int one = 1;
  setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  /* Loopback only: the container shares the host's network, and the appliance's LAN has
   * strangers on it. Never INADDR_ANY. */
  struct sockaddr_in addr;
  memset(&addr, 0, sizeof addr);
  addr.sin_family = AF_INET;
  addr.sin_port = htons((unsigned short)port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(listener, (struct sockaddr *)&addr, sizeof addr) < 0) {
    fprintf(stderr, "esl-standin: cannot listen on 127.0.0.1:%ld: %s\n", port, strerror(errno));
    return 1;
  }
  if (listen(listener, 16) < 0) {
    fprintf(stderr, "esl-standin: listen on 127.0.0.1:%ld: %s\n", port, strerror(errno));
    return 1;
  }
  printf("esl-standin (clgw stand-in, not FreeSWITCH): event socket on 127.0.0.1:%ld, calls from %s\n",
         port, calls_file);
  fflush(stdout);

  int children = 0;
  for (;;) {
    while (children > 0 && waitpid(-1, NULL, WNOHANG) > 0) children--;
    if (children >= MAX_CHILDREN) {
      if (waitpid(-1, NULL, 0) > 0) children--;
      continue;
    }
    int fd = accept4(listener, NULL, NULL, SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED || errno == EPROTO) continue;
      if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
        /* Out of resources for a moment: the pending connection waits in the backlog. */
        struct timespec pause = {.tv_nsec = 100 * 1000 * 1000};
        nanosleep(&pause, NULL);
        continue;
      }
      fprintf(stderr, "esl-standin: accept: %s\n", strerror(errno));
      return 1;
    }
    pid_t pid = fork();
    if (pid == 0) {
      close(listener);
      signal(SIGCHLD, SIG_DFL);
      serve(fd);
      _exit(0);
    }
    if (pid < 0) fprintf(stderr, "esl-standin: fork: %s; connection dropped\n", strerror(errno));
    else children++;
    close(fd);
  }
}
