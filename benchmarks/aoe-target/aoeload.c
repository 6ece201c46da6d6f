/*
 * aoeload: a neutral ATA-over-Ethernet load generator, and a null responder to measure it.
 *
 * Initiator mode (default): one thread, one raw AF_PACKET socket (EtherType 0x88A2) on one
 * interface, one target shelf.slot.  It discovers the target (broadcast query config: MAC,
 * buffer count, sectors per frame), sends IDENTIFY DEVICE for the size, then keeps QD ATA
 * commands outstanding (READ/WRITE SECTORS EXT, 0x24/0x34, each its own tag with bit 31 set)
 * for a fixed time, retransmitting any command whose reply is late, and prints one line:
 *
 *   RESULT label=... op=read pattern=seq sectors=17 bytes_per_op=8704 qd=16 ... mbps=... iops=...
 *
 * Responder mode (--respond): answers query config, IDENTIFY, READ/WRITE (EXT), FLUSH and
 * CHECK POWER MODE without any I/O.  Against it, aoeload measures its own ceiling.
 *
 * Data pattern: every sector written or served carries a 32-byte stamp (magic^seed, LBA, epoch,
 * check word) followed by a 480-byte body derived from the seed.  --fill writes the whole
 * device with it; --verify on reads checks every sector of every reply (so a target cannot win
 * by returning garbage); --verify on writes reads back the last completed writes after the
 * timed phase and requires this run's epoch (so a target cannot win by dropping writes).
 *
 * Syscalls: sends are batched with sendmmsg (all new commands and retransmits of one loop turn),
 * receives with recvmmsg(MSG_WAITFORONE): one blocking wait, then everything already queued.
 * Compared with one syscall per frame this is what lets one core drive a target at full rate;
 * the null responder figures in docs/PERFORMANCE.md are the measured ceiling.
 *
 * Build: cc -O2 -Wall -Wextra -o aoeload aoeload.c   (Linux, root or CAP_NET_RAW)
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum {
	ETHERTYPE_AOE = 0x88A2,
	ATA_HLEN = 36,      /* Ethernet 14 + AoE 10 + ATA argument 12 */
	CFG_HLEN = 32,      /* Ethernet 14 + AoE 10 + config argument 8 */
	MIN_FRAME = 60,     /* Ethernet minimum without FCS: veth does not pad, so we do */
	FRAME_BUF = 9216,   /* room for MTU 9000 + header; larger MTUs are refused */
	MAX_BATCH = 256,

	F_RESP = 0x08, F_ERR = 0x04, AOE_VER = 0x10,
	CMD_ATA = 0, CMD_CFG = 1,
	AF_EXT = 0x40, AF_WRITE = 0x01,
	ATA_READ_EXT = 0x24, ATA_WRITE_EXT = 0x34, ATA_READ = 0x20, ATA_WRITE = 0x30,
	ATA_IDENTIFY = 0xEC, ATA_FLUSH = 0xE7, ATA_FLUSH_EXT = 0xEA, ATA_CHECK_POWER = 0xE5,
	ST_ERR = 0x01, ST_DF = 0x20, ST_DRDY = 0x40,
	ERR_ABRT = 0x04, ERR_IDNF = 0x10,

	TAG_USER = (int)0x80000000u,
	WRITE_RING = 4096,  /* completed writes remembered for --verify read-back */
	HIST_SUB = 128,     /* histogram: 128 sub-buckets per power of two, < 0.8 % error */
	HIST_N = 64 * HIST_SUB,
};

#define STAMP_MAGIC 0x414F454C4F414431ull /* "AOELOAD1" */

/* ---------- small helpers ---------- */

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void die(const char *what)
{
	perror(what);
	exit(1);
}

static uint16_t get16be(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }
static uint32_t get32be(const uint8_t *p) { return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]; }
static void put16be(uint8_t *p, uint16_t v) { p[0] = (uint8_t)(v >> 8); p[1] = (uint8_t)v; }
static void put32be(uint8_t *p, uint32_t v) { p[0] = (uint8_t)(v >> 24); p[1] = (uint8_t)(v >> 16); p[2] = (uint8_t)(v >> 8); p[3] = (uint8_t)v; }
static uint64_t get48le(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 5; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}
static void put48le(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 6; i++, v >>= 8)
		p[i] = (uint8_t)v;
}

static uint64_t mix64(uint64_t x) /* splitmix64 finaliser */
{
	x ^= x >> 30; x *= 0xBF58476D1CE4E5B9ull;
	x ^= x >> 27; x *= 0x94D049BB133111EBull;
	return x ^ (x >> 31);
}

static uint64_t rng_next(uint64_t *s) /* xorshift64* */
{
	uint64_t x = *s;
	x ^= x >> 12; x ^= x << 25; x ^= x >> 27;
	*s = x;
	return x * 0x2545F4914F6CDD1Dull;
}

/* ---------- options ---------- */

static struct {
	const char *ifname;
	unsigned shelf, slot;
	int respond;
	int write;
	int random;
	int sectors;          /* 0: the most that fits a frame */
	int qd;
	double duration, warmup;
	int verify, fill, cap_window, busy_poll;
	uint64_t seed;
	uint32_t epoch;
	uint64_t tag_seed;    /* first tag generation of each slot; random unless given */
	uint64_t rto_min_ns, rto_max_ns;
	int batch;
	const char *label;
	double discover_timeout;
	uint64_t size_bytes;  /* responder */
	unsigned bufcnt;      /* responder */
} opt = {
	.shelf = 1, .slot = 0, .qd = 1, .duration = 5, .warmup = 0.5,
	.seed = 0x5EED, .rto_min_ns = 10000000, .rto_max_ns = 500000000, .batch = 64,
	.label = "-", .discover_timeout = 10, .size_bytes = 1ull << 30, .bufcnt = 256,
};

static void usage(void)
{
	fprintf(stderr,
		"usage: aoeload -i IFACE [-t SHELF.SLOT] [options]\n"
		"  initiator (default):\n"
		"    --op read|write          (read)\n"
		"    --pattern seq|rand       (seq; random offsets are aligned to the request size)\n"
		"    --sectors N              sectors per command (default: most that fits, target's limit)\n"
		"    --qd N                   outstanding commands, one tag each (1)\n"
		"    --duration S --warmup S  measured seconds after a warm-up (5, 0.5)\n"
		"    --verify                 reads: check every sector's stamp and body;\n"
		"                             writes: read back the last %d writes, require this epoch\n"
		"    --fill                   write the whole device once with the pattern, then exit\n"
		"    --cap-window             limit qd to the target's advertised buffer count\n"
		"    --busy-poll              spin on non-blocking receives instead of sleeping\n"
		"    --rto-min-us N           retransmit timeout floor (10000); the RTO adapts above it\n"
		"    --batch N                frames per sendmmsg/recvmmsg (64)\n"
		"    --label TEXT             copied to the result line\n"
		"    --seed N --epoch N       data pattern seed (0x5EED) and write epoch (random)\n"
		"    --tag-seed N             where tag numbering starts (random, so reruns do not reuse tags)\n"
		"  --respond                  null responder: answer requests for SHELF.SLOT, no I/O\n"
		"    --size BYTES --bufcnt N  advertised size (1 GiB) and buffer count (256)\n",
		WRITE_RING);
	exit(1);
}

static void parse_args(int argc, char **argv)
{
	enum { O_OP = 256, O_PAT, O_SECT, O_QD, O_DUR, O_WARM, O_VERIFY, O_FILL, O_CAP, O_BUSY,
	       O_RTO, O_BATCH, O_LABEL, O_SEED, O_EPOCH, O_RESPOND, O_SIZE, O_BUFCNT, O_DISC, O_TAGSEED };
	static const struct option lo[] = {
		{"interface", 1, 0, 'i'}, {"target", 1, 0, 't'}, {"op", 1, 0, O_OP},
		{"pattern", 1, 0, O_PAT}, {"sectors", 1, 0, O_SECT}, {"qd", 1, 0, O_QD},
		{"duration", 1, 0, O_DUR}, {"warmup", 1, 0, O_WARM}, {"verify", 0, 0, O_VERIFY},
		{"fill", 0, 0, O_FILL}, {"cap-window", 0, 0, O_CAP}, {"busy-poll", 0, 0, O_BUSY},
		{"rto-min-us", 1, 0, O_RTO}, {"batch", 1, 0, O_BATCH}, {"label", 1, 0, O_LABEL},
		{"seed", 1, 0, O_SEED}, {"epoch", 1, 0, O_EPOCH}, {"respond", 0, 0, O_RESPOND},
		{"size", 1, 0, O_SIZE}, {"bufcnt", 1, 0, O_BUFCNT}, {"discover-timeout", 1, 0, O_DISC},
		{"tag-seed", 1, 0, O_TAGSEED},
		{"help", 0, 0, 'h'}, {0, 0, 0, 0},
	};
	int c;
	int have_epoch = 0, have_tag_seed = 0;
	while ((c = getopt_long(argc, argv, "i:t:h", lo, NULL)) != -1) {
		switch (c) {
		case 'i': opt.ifname = optarg; break;
		case 't':
			if (sscanf(optarg, "%u.%u", &opt.shelf, &opt.slot) != 2 || opt.shelf >= 0xFFFF || opt.slot >= 0xFF)
				usage();
			break;
		case O_OP:
			if (!strcmp(optarg, "read")) opt.write = 0;
			else if (!strcmp(optarg, "write")) opt.write = 1;
			else usage();
			break;
		case O_PAT:
			if (!strcmp(optarg, "seq")) opt.random = 0;
			else if (!strcmp(optarg, "rand")) opt.random = 1;
			else usage();
			break;
		case O_SECT: opt.sectors = atoi(optarg); if (opt.sectors < 1 || opt.sectors > 255) usage(); break;
		case O_QD: opt.qd = atoi(optarg); if (opt.qd < 1 || opt.qd > 4096) usage(); break;
		case O_DUR: opt.duration = atof(optarg); if (opt.duration <= 0) usage(); break;
		case O_WARM: opt.warmup = atof(optarg); if (opt.warmup < 0) usage(); break;
		case O_VERIFY: opt.verify = 1; break;
		case O_FILL: opt.fill = 1; break;
		case O_CAP: opt.cap_window = 1; break;
		case O_BUSY: opt.busy_poll = 1; break;
		case O_RTO: opt.rto_min_ns = strtoull(optarg, NULL, 0) * 1000; if (!opt.rto_min_ns) usage(); break;
		case O_BATCH: opt.batch = atoi(optarg); if (opt.batch < 1 || opt.batch > MAX_BATCH) usage(); break;
		case O_LABEL: opt.label = optarg; break;
		case O_SEED: opt.seed = strtoull(optarg, NULL, 0); break;
		case O_EPOCH: opt.epoch = (uint32_t)strtoul(optarg, NULL, 0); have_epoch = 1; break;
		case O_RESPOND: opt.respond = 1; break;
		case O_SIZE: opt.size_bytes = strtoull(optarg, NULL, 0); break;
		case O_BUFCNT: opt.bufcnt = (unsigned)atoi(optarg); if (!opt.bufcnt || opt.bufcnt > 0xFFFF) usage(); break;
		case O_DISC: opt.discover_timeout = atof(optarg); break;
		case O_TAGSEED: opt.tag_seed = strtoull(optarg, NULL, 0); have_tag_seed = 1; break;
		default: usage();
		}
	}
	if (!opt.ifname || optind != argc)
		usage();
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	uint64_t r = mix64((uint64_t)ts.tv_nsec ^ (uint64_t)ts.tv_sec << 32 ^ (uint64_t)getpid());
	if (!have_epoch)
		opt.epoch = (uint32_t)r | 1;
	if (!have_tag_seed)
		opt.tag_seed = mix64(r);
}

/* ---------- data pattern ---------- */

static uint8_t body_template[512];

static void pattern_init(void)
{
	uint64_t s = opt.seed * 0x9E3779B97F4A7C15ull + 1;
	for (int i = 0; i < 512; i += 8) {
		uint64_t v = rng_next(&s);
		memcpy(body_template + i, &v, 8);
	}
}

static uint64_t stamp_check(uint64_t lba, uint64_t epoch)
{
	return mix64(opt.seed ^ lba * 0xD6E8FEB86659FD93ull ^ epoch * 0xA0761D6478BD642Full);
}

/* Stamps one sector; the 480-byte body is already the template (buffers are prefilled). */
static void stamp_sector(uint8_t *s, uint64_t lba, uint32_t epoch)
{
	uint64_t w[4] = { STAMP_MAGIC ^ opt.seed, lba, epoch, stamp_check(lba, epoch) };
	memcpy(s, w, sizeof w);
}

static void prefill_sectors(uint8_t *data, int n)
{
	for (int i = 0; i < n; i++)
		memcpy(data + i * 512, body_template, 512);
}

/* Returns 1 when the sector carries the pattern for lba (and, if exact, this run's epoch). */
static int sector_ok(const uint8_t *s, uint64_t lba, int exact_epoch)
{
	uint64_t w[4];
	memcpy(w, s, sizeof w);
	if (w[0] != (STAMP_MAGIC ^ opt.seed) || w[1] != lba || w[3] != stamp_check(lba, w[2]))
		return 0;
	if (exact_epoch && w[2] != opt.epoch)
		return 0;
	return memcmp(s + 32, body_template + 32, 480) == 0;
}

/* ---------- latency histogram (log-linear, ns) ---------- */

static int hist_index(uint64_t v)
{
	if (v < 2 * HIST_SUB)
		return (int)v;
	int msb = 63 - __builtin_clzll(v);
	int shift = msb - 7;                 /* v >> shift is in [128, 255] */
	int idx = shift * HIST_SUB + (int)(v >> shift);
	return idx < HIST_N ? idx : HIST_N - 1;
}

static double hist_value(int idx) /* midpoint of the bucket, ns */
{
	if (idx < 2 * HIST_SUB)
		return idx;
	int shift = idx / HIST_SUB - 1;
	uint64_t base = (uint64_t)(idx - shift * HIST_SUB) << shift;
	return (double)base + (double)(1ull << shift) / 2;
}

static double hist_percentile(const uint64_t *h, uint64_t total, double p)
{
	if (!total)
		return 0;
	uint64_t want = (uint64_t)(p * (double)total);
	if (want >= total) want = total - 1;
	uint64_t acc = 0;
	for (int i = 0; i < HIST_N; i++) {
		acc += h[i];
		if (acc > want)
			return hist_value(i);
	}
	return hist_value(HIST_N - 1);
}

/* ---------- socket ---------- */

static int ifindex, ifmtu;
static uint8_t ifmac[6];

static int open_socket(void)
{
	int fd = socket(AF_PACKET, SOCK_RAW, htons(ETHERTYPE_AOE));
	if (fd < 0)
		die("socket(AF_PACKET)");
	struct ifreq ifr;
	memset(&ifr, 0, sizeof ifr);
	snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "%s", opt.ifname);
	if (ioctl(fd, SIOCGIFINDEX, &ifr) < 0) die("SIOCGIFINDEX");
	ifindex = ifr.ifr_ifindex;
	if (ioctl(fd, SIOCGIFMTU, &ifr) < 0) die("SIOCGIFMTU");
	ifmtu = ifr.ifr_mtu;
	if (ioctl(fd, SIOCGIFHWADDR, &ifr) < 0) die("SIOCGIFHWADDR");
	memcpy(ifmac, ifr.ifr_hwaddr.sa_data, 6);
	if (ifmtu + 14 > FRAME_BUF) {
		fprintf(stderr, "aoeload: MTU %d larger than supported (%d)\n", ifmtu, FRAME_BUF - 14);
		exit(1);
	}
	struct sockaddr_ll sa;
	memset(&sa, 0, sizeof sa);
	sa.sll_family = AF_PACKET;
	sa.sll_protocol = htons(ETHERTYPE_AOE);
	sa.sll_ifindex = ifindex;
	if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0)
		die("bind");
	/* Large buffers so neither end's queue depth is limited by our socket (root: FORCE). */
	int big = 64 << 20;
	if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &big, sizeof big) < 0)
		setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &big, sizeof big);
	if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &big, sizeof big) < 0)
		setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &big, sizeof big);
#ifdef PACKET_IGNORE_OUTGOING
	int one = 1;
	setsockopt(fd, SOL_PACKET, PACKET_IGNORE_OUTGOING, &one, sizeof one);
#endif
	return fd;
}

static void set_rcvtimeo(int fd, uint64_t ns)
{
	struct timeval tv = { .tv_sec = (time_t)(ns / 1000000000ull), .tv_usec = (suseconds_t)(ns % 1000000000ull / 1000) };
	if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) < 0)
		die("SO_RCVTIMEO");
}

/* Sends one frame (padded to 60 bytes; the buffer must have room). Sockets are bound: no address. */
static void send_one(int fd, uint8_t *f, size_t len)
{
	if (len < MIN_FRAME) {
		memset(f + len, 0, MIN_FRAME - len);
		len = MIN_FRAME;
	}
	if (send(fd, f, len, 0) < 0)
		perror("send");
}

/* ---------- stop on signal ---------- */

static volatile sig_atomic_t stop_requested;
static void on_signal(int sig) { (void)sig; stop_requested = 1; }

static void install_signals(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_signal; /* no SA_RESTART: a blocking recvmmsg returns EINTR */
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
}

/* ======================= null responder ======================= */

static void build_identify(uint8_t *d, uint64_t nsect)
{
	uint16_t id[256];
	memset(id, 0, sizeof id);
	id[47] = 0x8000; id[49] = 0x0200; id[50] = 0x4000;
	id[83] = 0x5400; id[84] = 0x4000; id[86] = 0x1400; id[87] = 0x4000; id[93] = 0x400B;
	char model[41];
	snprintf(model, sizeof model, "%-40s", "aoeload null responder");
	for (int i = 0; i < 20; i++) /* ATA strings: two characters per word, first in the high byte */
		id[27 + i] = (uint16_t)(model[2 * i] << 8 | model[2 * i + 1]);
	uint64_t l28 = nsect > 0x0FFFFFFF ? 0x0FFFFFFF : nsect;
	id[60] = (uint16_t)l28; id[61] = (uint16_t)(l28 >> 16);
	for (int i = 0; i < 4; i++)
		id[100 + i] = (uint16_t)(nsect >> (16 * i));
	for (int i = 0; i < 256; i++) { /* little-endian words on the wire */
		d[2 * i] = (uint8_t)id[i];
		d[2 * i + 1] = (uint8_t)(id[i] >> 8);
	}
}

/* Builds the reply to request q (qlen bytes) in r; returns the reply length (0: no reply). */
static size_t respond_one(const uint8_t *q, size_t qlen, uint8_t *r, uint64_t nsect, int maxsect,
			  uint64_t *nreads, uint64_t *nwrites)
{
	if (qlen < 24 || (q[14] & F_RESP) || (q[14] >> 4) != 1)
		return 0;
	uint16_t maj = get16be(q + 16);
	uint8_t min = q[18];
	if ((maj != opt.shelf && maj != 0xFFFF) || (min != opt.slot && min != 0xFF))
		return 0;
	size_t len;
	memcpy(r, q, 24);
	memcpy(r, q + 6, 6);
	memcpy(r + 6, ifmac, 6);
	r[14] = AOE_VER | F_RESP;
	r[15] = 0;
	put16be(r + 16, (uint16_t)opt.shelf);
	r[18] = (uint8_t)opt.slot;
	switch (q[19]) {
	case CMD_CFG:
		if (qlen < CFG_HLEN)
			return 0;
		memset(r + 24, 0, CFG_HLEN - 24);
		put16be(r + 24, (uint16_t)opt.bufcnt);
		put16be(r + 26, 0x4019);
		r[28] = (uint8_t)maxsect;
		r[29] = 0x10; /* version 1, CCmd read: config strings are not kept */
		len = CFG_HLEN;
		break;
	case CMD_ATA: {
		if (qlen < ATA_HLEN)
			return 0;
		memcpy(r + 24, q + 24, 12);
		uint8_t cmd = q[27], count = q[26];
		uint64_t lba = get48le(q + 28);
		if (cmd == ATA_READ || cmd == ATA_WRITE)
			lba &= 0x0FFFFFFF;
		len = ATA_HLEN;
		r[25] = 0;
		r[27] = ST_DRDY;
		switch (cmd) {
		case ATA_IDENTIFY:
			build_identify(r + ATA_HLEN, nsect);
			r[26] = 0;
			len += 512;
			break;
		case ATA_READ: case ATA_READ_EXT: case ATA_WRITE: case ATA_WRITE_EXT: {
			int wr = cmd == ATA_WRITE || cmd == ATA_WRITE_EXT;
			if (count > maxsect || (wr && qlen < (size_t)ATA_HLEN + count * 512u)) {
				r[14] |= F_ERR; r[15] = 2; /* bad argument, as vblade does */
				break;
			}
			if (lba + count > nsect) {
				r[27] = ST_DRDY | ST_ERR; r[25] = ERR_IDNF;
				break;
			}
			if (!wr) {
				for (int i = 0; i < count; i++) {
					uint8_t *s = r + ATA_HLEN + i * 512;
					memcpy(s, body_template, 512);
					stamp_sector(s, lba + i, opt.epoch);
				}
				len += (size_t)count * 512;
				++*nreads;
			} else {
				++*nwrites;
			}
			r[26] = 0;
			put48le(r + 28, lba + count);
			break;
		}
		case ATA_FLUSH: case ATA_FLUSH_EXT:
			break;
		case ATA_CHECK_POWER:
			r[26] = 0xFF;
			break;
		default:
			r[27] = ST_DRDY | ST_ERR; r[25] = ERR_ABRT;
			break;
		}
		break;
	}
	default:
		r[14] |= F_ERR; r[15] = 1;
		len = 24;
		break;
	}
	if (len < MIN_FRAME) {
		memset(r + len, 0, MIN_FRAME - len);
		len = MIN_FRAME;
	}
	return len;
}

static int run_responder(void)
{
	int fd = open_socket();
	uint64_t nsect = opt.size_bytes / 512;
	int maxsect = (ifmtu - ATA_HLEN) / 512;
	if (maxsect > 255) maxsect = 255;
	int b = opt.batch;
	uint8_t *rx = aligned_alloc(4096, (size_t)b * FRAME_BUF);
	uint8_t *tx = aligned_alloc(4096, (size_t)b * FRAME_BUF);
	struct mmsghdr rm[MAX_BATCH], tm[MAX_BATCH];
	struct iovec rv[MAX_BATCH], tv[MAX_BATCH];
	if (!rx || !tx) die("alloc");
	memset(rm, 0, sizeof rm);
	memset(tm, 0, sizeof tm);
	for (int i = 0; i < b; i++) {
		rv[i].iov_base = rx + (size_t)i * FRAME_BUF; rv[i].iov_len = FRAME_BUF;
		rm[i].msg_hdr.msg_iov = &rv[i]; rm[i].msg_hdr.msg_iovlen = 1;
		tv[i].iov_base = tx + (size_t)i * FRAME_BUF;
		tm[i].msg_hdr.msg_iov = &tv[i]; tm[i].msg_hdr.msg_iovlen = 1;
	}
	install_signals();

	/* Announce, as vblade does: an unsolicited config reply to broadcast. */
	uint8_t ad[FRAME_BUF];
	memset(ad, 0, CFG_HLEN);
	memset(ad, 0xFF, 6);
	ad[12] = 0x88; ad[13] = 0xA2; ad[14] = AOE_VER; ad[19] = CMD_CFG;
	put16be(ad + 16, (uint16_t)opt.shelf); ad[18] = (uint8_t)opt.slot;
	memcpy(ad + 6, ifmac, 6);
	uint64_t dummy = 0;
	size_t adlen = respond_one(ad, CFG_HLEN, tx, nsect, maxsect, &dummy, &dummy);
	memset(tx, 0xFF, 6);
	send_one(fd, tx, adlen);

	printf("aoeload responder: e%u.%u on %s mtu %d, %" PRIu64 " sectors, %d sectors/frame, bufcnt %u: serving\n",
	       opt.shelf, opt.slot, opt.ifname, ifmtu, nsect, maxsect, opt.bufcnt);
	fflush(stdout);

	uint64_t frames = 0, replies = 0, reads = 0, writes = 0, send_err = 0, batches = 0;
	while (!stop_requested) {
		int n = recvmmsg(fd, rm, (unsigned)b, MSG_WAITFORONE, NULL);
		if (n < 0) {
			if (errno == EINTR) continue;
			die("recvmmsg");
		}
		batches++;
		int nt = 0;
		for (int i = 0; i < n; i++) {
			frames++;
			size_t l = respond_one(rx + (size_t)i * FRAME_BUF, rm[i].msg_len, tx + (size_t)nt * FRAME_BUF,
					       nsect, maxsect, &reads, &writes);
			if (l) {
				tv[nt].iov_len = l;
				nt++;
			}
		}
		for (int off = 0; off < nt;) {
			int s = sendmmsg(fd, tm + off, (unsigned)(nt - off), 0);
			if (s < 0) {
				if (errno == EINTR) continue;
				send_err++;  /* a dropped reply is the initiator's to retransmit; keep serving */
				off++;
				continue;
			}
			off += s;
			replies += (uint64_t)s;
		}
	}
	fprintf(stderr, "aoeload responder: frames=%" PRIu64 " replies=%" PRIu64 " reads=%" PRIu64
		" writes=%" PRIu64 " send_errors=%" PRIu64 " frames_per_recvmmsg=%.2f\n",
		frames, replies, reads, writes, send_err, batches ? (double)frames / (double)batches : 0.0);
	return 0;
}

/* ======================= initiator ======================= */

struct target {
	uint8_t mac[6];
	unsigned bufcnt;
	unsigned maxsect;
	unsigned firmware;
	uint64_t nsect;
};

struct slot {
	uint8_t *frame;
	uint32_t len;
	uint32_t tag;
	uint16_t gen;
	uint8_t inflight;
	uint8_t count;
	uint8_t write;
	uint8_t retries;
	uint64_t lba;
	uint64_t t_first;
	uint64_t deadline;
	uint64_t rto;
};

struct stats {
	uint64_t ops, bytes;            /* completed without error inside the window */
	uint64_t all_ops;               /* completed, any time, any status */
	uint64_t retrans, stale, send_errors;
	uint64_t aoe_errors, ata_errors, short_replies, verify_errors;
	uint64_t hist[HIST_N];
	uint64_t lat_sum;
	uint64_t reported;              /* the first bad reply is described on stderr */
};

struct workload {
	int write;
	int random;
	int count;
	int exact_epoch;      /* verify: require this run's epoch (write read-back) */
	int verify;
	uint64_t cursor;      /* sequential */
	uint64_t rng;
	uint64_t limit;       /* stop after this many commands (0: time-bound) */
	uint64_t issued;
	const uint64_t *list; /* read-back list: (lba << 8 | count) */
	uint64_t list_n;
};

static struct target T;
static struct slot *slots;
static int nslots;
static int *freelist, nfree;
static uint64_t srtt, rttvar;
static int have_rtt;
static uint64_t write_ring[WRITE_RING];
static uint64_t write_ring_n;

/*
 * Retransmit timeout: Jacobson/Karels (srtt + 4 rttvar) with a 10 ms floor.  Measured here: with a
 * 2 ms floor, replies delayed by one or two scheduler ticks (4 ms, whenever anything else runs on
 * either core) came back as bursts of spurious retransmits (tens to thousands per run, every one a
 * duplicate the target had to serve); 10 ms removes those, and a frame really lost (vblade's socket
 * buffer overflowing at queue depths above its buffer count) still costs that command only ~10 ms.
 */
static uint64_t current_rto(void)
{
	uint64_t rto = have_rtt ? srtt + 4 * rttvar : 20000000; /* 20 ms before the first sample */
	if (rto < opt.rto_min_ns) rto = opt.rto_min_ns;
	if (rto > opt.rto_max_ns) rto = opt.rto_max_ns;
	return rto;
}

static void rtt_sample(uint64_t rtt) /* Jacobson/Karels, fed only by commands never retransmitted */
{
	if (!have_rtt) {
		srtt = rtt; rttvar = rtt / 2; have_rtt = 1;
		return;
	}
	uint64_t d = rtt > srtt ? rtt - srtt : srtt - rtt;
	rttvar = (3 * rttvar + d) / 4;
	srtt = (7 * srtt + rtt) / 8;
}

static void frame_header(uint8_t *f, uint8_t cmd)
{
	memcpy(f, T.mac, 6);
	memcpy(f + 6, ifmac, 6);
	f[12] = 0x88; f[13] = 0xA2;
	f[14] = AOE_VER; f[15] = 0;
	put16be(f + 16, (uint16_t)opt.shelf);
	f[18] = (uint8_t)opt.slot;
	f[19] = cmd;
}

/* Waits up to timeout for a frame accepted by want(); returns its length or 0. */
static size_t wait_frame(int fd, uint8_t *buf, uint64_t timeout_ns, int (*want)(const uint8_t *, size_t, uint32_t), uint32_t tag)
{
	uint64_t end = now_ns() + timeout_ns;
	for (;;) {
		uint64_t now = now_ns();
		if (now >= end)
			return 0;
		struct pollfd p = { .fd = fd, .events = POLLIN };
		int ms = (int)((end - now) / 1000000) + 1;
		if (poll(&p, 1, ms) <= 0)
			continue;
		ssize_t n = recv(fd, buf, FRAME_BUF, MSG_DONTWAIT);
		if (n > 0 && want(buf, (size_t)n, tag))
			return (size_t)n;
	}
}

static int want_config(const uint8_t *f, size_t n, uint32_t tag)
{
	(void)tag;
	return n >= CFG_HLEN && (f[14] & F_RESP) && !(f[14] & F_ERR) && f[19] == CMD_CFG &&
	       get16be(f + 16) == opt.shelf && f[18] == opt.slot;
}

static int want_identify(const uint8_t *f, size_t n, uint32_t tag)
{
	return n >= ATA_HLEN && (f[14] & F_RESP) && f[19] == CMD_ATA && get32be(f + 20) == tag &&
	       !memcmp(f + 6, T.mac, 6);
}

static void discover(int fd)
{
	uint8_t q[FRAME_BUF], r[FRAME_BUF];
	uint64_t end = now_ns() + (uint64_t)(opt.discover_timeout * 1e9);
	memset(q, 0, CFG_HLEN);
	memset(T.mac, 0xFF, 6); /* broadcast query */
	frame_header(q, CMD_CFG);
	put32be(q + 20, 0x80000000u | 0x7FFF0000u);
	for (;;) {
		send_one(fd, q, CFG_HLEN);
		if (wait_frame(fd, r, 200000000, want_config, 0))
			break;
		if (now_ns() > end) {
			fprintf(stderr, "aoeload: no config reply from e%u.%u on %s\n", opt.shelf, opt.slot, opt.ifname);
			exit(1);
		}
	}
	memcpy(T.mac, r + 6, 6);
	T.bufcnt = get16be(r + 24);
	T.firmware = get16be(r + 26);
	T.maxsect = r[28];
	if (!T.maxsect) /* some targets leave it zero; the spec default is 2 */
		T.maxsect = 2;

	/* IDENTIFY DEVICE for the size */
	memset(q, 0, ATA_HLEN);
	frame_header(q, CMD_ATA);
	uint32_t tag = 0x80000000u | 0x7FFE0000u;
	put32be(q + 20, tag);
	q[26] = 1;
	q[27] = ATA_IDENTIFY;
	size_t n = 0;
	for (int tries = 0; tries < 20 && !n; tries++) {
		send_one(fd, q, ATA_HLEN);
		n = wait_frame(fd, r, 200000000, want_identify, tag);
	}
	if (!n || (r[14] & F_ERR) || (r[27] & ST_ERR) || n < ATA_HLEN + 512) {
		fprintf(stderr, "aoeload: IDENTIFY failed (len %zu flags 0x%02x status 0x%02x)\n", n, r[14], r[27]);
		exit(1);
	}
	const uint8_t *id = r + ATA_HLEN;
	uint16_t w83 = (uint16_t)(id[166] | id[167] << 8);
	if (w83 & (1 << 10)) {
		T.nsect = 0;
		for (int i = 7; i >= 0; i--)
			T.nsect = T.nsect << 8 | id[200 + i];
	} else {
		T.nsect = (uint64_t)id[120] | (uint64_t)id[121] << 8 | (uint64_t)id[122] << 16 | (uint64_t)id[123] << 24;
	}
	if (!T.nsect) {
		fprintf(stderr, "aoeload: target reports size 0\n");
		exit(1);
	}
}

/* Next command from the workload; returns 0 when the workload is exhausted. */
static int next_command(struct workload *w, uint64_t *lba, int *count)
{
	if (w->limit && w->issued >= w->limit)
		return 0;
	if (w->list) {
		if (w->issued >= w->list_n)
			return 0;
		uint64_t e = w->list[w->issued];
		*lba = e >> 8;
		*count = (int)(e & 0xFF);
	} else if (w->random) {
		uint64_t blocks = T.nsect / (uint64_t)w->count;
		*lba = rng_next(&w->rng) % blocks * (uint64_t)w->count;
		*count = w->count;
	} else {
		if (w->cursor >= T.nsect)
			w->cursor = 0;
		*lba = w->cursor;
		uint64_t left = T.nsect - w->cursor;
		*count = left < (uint64_t)w->count ? (int)left : w->count;
		w->cursor += (uint64_t)*count;
	}
	w->issued++;
	return 1;
}

static void issue(struct slot *s, int idx, uint64_t lba, int count, int write, uint64_t now)
{
	uint8_t *f = s->frame;
	s->gen = (uint16_t)((s->gen + 1) & 0x7FFF);
	s->tag = 0x80000000u | (uint32_t)s->gen << 16 | (uint32_t)idx;
	put32be(f + 20, s->tag);
	f[24] = (uint8_t)(AF_EXT | (write ? AF_WRITE : 0));
	f[25] = 0;
	f[26] = (uint8_t)count;
	f[27] = write ? ATA_WRITE_EXT : ATA_READ_EXT;
	put48le(f + 28, lba);
	f[34] = f[35] = 0;
	if (write) {
		for (int i = 0; i < count; i++)
			stamp_sector(f + ATA_HLEN + i * 512, lba + (uint64_t)i, opt.epoch);
		s->len = ATA_HLEN + (uint32_t)count * 512;
	} else {
		s->len = ATA_HLEN;
	}
	if (s->len < MIN_FRAME) {
		memset(f + s->len, 0, MIN_FRAME - s->len);
		s->len = MIN_FRAME;
	}
	s->lba = lba;
	s->count = (uint8_t)count;
	s->write = (uint8_t)write;
	s->retries = 0;
	s->inflight = 1;
	s->t_first = now;
	s->rto = current_rto();
	s->deadline = now + s->rto;
}

/* Send queue of one loop turn: indices of slots whose frame goes out in one sendmmsg. */
static struct mmsghdr txm[4096];
static struct iovec txv[4096];
static int ntx;

static void queue_tx(struct slot *s)
{
	txv[ntx].iov_base = s->frame;
	txv[ntx].iov_len = s->len;
	ntx++;
}

static void flush_tx(int fd, struct stats *st)
{
	int off = 0;
	while (off < ntx) {
		int chunk = ntx - off;
		if (chunk > opt.batch) chunk = opt.batch;
		int n = sendmmsg(fd, txm + off, (unsigned)chunk, 0);
		if (n < 0) {
			if (errno == EINTR) continue;
			/* ENOBUFS and the like: this frame is lost; its retransmit timer recovers it. */
			st->send_errors++;
			off++;
			continue;
		}
		off += n;
	}
	ntx = 0;
}

/* Describes one bad reply on stderr, so a failing case says what the target got wrong. */
static void report_error(const uint8_t *f, size_t len, const struct slot *s, int exact_epoch)
{
	fprintf(stderr, "aoeload: first bad reply: %s lba %" PRIu64 " count %u tag 0x%08x: len %zu, aoe flags 0x%x error %u,"
		" ata status 0x%02x error 0x%02x", s->write ? "write" : "read", s->lba, s->count, s->tag, len,
		f[14] & 0xF, f[15], f[27], f[25]);
	if (!s->write && !(f[14] & F_ERR) && !(f[27] & (ST_ERR | ST_DF)) && len >= (size_t)ATA_HLEN + s->count * 512u) {
		for (int k = 0; k < s->count; k++) {
			const uint8_t *p = f + ATA_HLEN + k * 512;
			if (sector_ok(p, s->lba + (uint64_t)k, exact_epoch))
				continue;
			uint64_t w[3];
			memcpy(w, p, sizeof w);
			fprintf(stderr, "; sector %" PRIu64 " holds stamp lba %" PRIu64 " epoch 0x%" PRIx64 "%s (want epoch 0x%x%s)",
				s->lba + (uint64_t)k, w[1], w[2], w[0] == (STAMP_MAGIC ^ opt.seed) ? "" : ", no pattern magic",
				opt.epoch, exact_epoch ? "" : " or any");
			break;
		}
	}
	fputc('\n', stderr);
}

/*
 * Runs the workload until it is exhausted or the clock passes t_stop, then drains the
 * commands still outstanding (up to drain_ns).  Only completions inside [win_start, win_end)
 * count toward ops, bytes and latency.
 */
static void run_engine(int fd, struct workload *w, struct stats *st, uint64_t t_stop,
		       uint64_t win_start, uint64_t win_end, uint64_t drain_ns, int record_writes)
{
	static uint8_t rxbuf[MAX_BATCH][FRAME_BUF] __attribute__((aligned(64)));
	struct mmsghdr rm[MAX_BATCH];
	struct iovec rv[MAX_BATCH];
	memset(rm, 0, sizeof rm);
	for (int i = 0; i < opt.batch; i++) {
		rv[i].iov_base = rxbuf[i]; rv[i].iov_len = FRAME_BUF;
		rm[i].msg_hdr.msg_iov = &rv[i]; rm[i].msg_hdr.msg_iovlen = 1;
	}
	int outstanding = 0;
	int exhausted = 0;
	uint64_t next_check = UINT64_MAX;
	uint64_t drain_end = 0;

	for (;;) {
		uint64_t now = now_ns();
		if (!exhausted && (now >= t_stop || stop_requested)) {
			exhausted = 1;
			drain_end = now + drain_ns;
		}
		/* New commands into every free slot. */
		while (!exhausted && nfree > 0) {
			uint64_t lba;
			int count;
			if (!next_command(w, &lba, &count)) {
				exhausted = 1;
				drain_end = now + drain_ns;
				break;
			}
			int idx = freelist[--nfree];
			struct slot *s = &slots[idx];
			issue(s, idx, lba, count, w->write, now);
			if (s->deadline < next_check) next_check = s->deadline;
			outstanding++;
			queue_tx(s);
		}
		/* Retransmit late commands; each retransmit doubles that command's timeout. */
		if (now >= next_check) {
			next_check = UINT64_MAX;
			for (int i = 0; i < nslots; i++) {
				struct slot *s = &slots[i];
				if (!s->inflight)
					continue;
				if (now >= s->deadline) {
					s->retries++;
					st->retrans++;
					s->rto = s->rto * 2 > opt.rto_max_ns ? opt.rto_max_ns : s->rto * 2;
					s->deadline = now + s->rto;
					queue_tx(s);
				}
				if (s->deadline < next_check) next_check = s->deadline;
			}
		}
		if (ntx)
			flush_tx(fd, st);
		if (exhausted && (outstanding == 0 || now >= drain_end))
			break;

		int n = recvmmsg(fd, rm, (unsigned)opt.batch, opt.busy_poll ? MSG_DONTWAIT : MSG_WAITFORONE, NULL);
		if (n <= 0) {
			if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
				die("recvmmsg");
			continue;
		}
		now = now_ns();
		for (int i = 0; i < n; i++) {
			const uint8_t *f = rxbuf[i];
			size_t len = rm[i].msg_len;
			if (len < ATA_HLEN || !(f[14] & F_RESP) || f[19] != CMD_ATA || memcmp(f + 6, T.mac, 6) ||
			    get16be(f + 16) != opt.shelf || f[18] != opt.slot)
				continue;
			uint32_t tag = get32be(f + 20);
			uint32_t idx = tag & 0xFFFF;
			if (!(tag & 0x80000000u) || idx >= (uint32_t)nslots) {
				st->stale++;
				continue;
			}
			struct slot *s = &slots[idx];
			if (!s->inflight || s->tag != tag) {
				st->stale++;  /* reply to a retransmitted command already answered */
				continue;
			}
			int bad = 0;
			if (f[14] & F_ERR) {
				st->aoe_errors++;
				bad = 1;
			} else if (f[27] & (ST_ERR | ST_DF)) {
				st->ata_errors++;
				bad = 1;
			} else if (!s->write) {
				if ((rm[i].msg_hdr.msg_flags & MSG_TRUNC) || len < (size_t)ATA_HLEN + s->count * 512u) {
					st->short_replies++;
					bad = 1;
				} else if (w->verify) {
					for (int k = 0; k < s->count; k++) {
						if (!sector_ok(f + ATA_HLEN + k * 512, s->lba + (uint64_t)k, w->exact_epoch)) {
							st->verify_errors++;
							bad = 1;
							break;
						}
					}
				}
			}
			if (bad && !st->reported++)
				report_error(f, len, s, w->exact_epoch);
			uint64_t lat = now - s->t_first;
			if (!s->retries)
				rtt_sample(lat);
			st->all_ops++;
			if (!bad && now >= win_start && now < win_end) {
				st->ops++;
				st->bytes += (uint64_t)s->count * 512;
				st->hist[hist_index(lat)]++;
				st->lat_sum += lat;
			}
			if (!bad && record_writes && s->write)
				write_ring[write_ring_n++ % WRITE_RING] = s->lba << 8 | s->count;
			s->inflight = 0;
			freelist[nfree++] = (int)idx;
			outstanding--;
		}
	}
	/* Whatever is still outstanding after the drain is abandoned: free its slots. */
	for (int i = 0; i < nslots; i++) {
		if (slots[i].inflight) {
			slots[i].inflight = 0;
			freelist[nfree++] = i;
		}
	}
}

static void setup_slots(int qd, int max_count, int write)
{
	nslots = qd;
	slots = calloc((size_t)qd, sizeof *slots);
	freelist = malloc((size_t)qd * sizeof *freelist);
	uint8_t *mem = aligned_alloc(4096, (size_t)qd * FRAME_BUF);
	if (!slots || !freelist || !mem) die("alloc");
	for (int i = 0; i < qd; i++) {
		slots[i].frame = mem + (size_t)i * FRAME_BUF;
		memset(slots[i].frame, 0, ATA_HLEN);
		frame_header(slots[i].frame, CMD_ATA);
		if (write)
			prefill_sectors(slots[i].frame + ATA_HLEN, max_count);
		/* Tags are 0x80000000 | generation << 16 | slot.  Generations start at a random point,
		 * like the Linux initiator's clock-based tags, so a rerun does not replay the previous
		 * run's tags (a target's duplicate-write cache would take them for retransmits). */
		slots[i].gen = (uint16_t)(mix64(opt.tag_seed + (uint64_t)i) & 0x7FFF);
		freelist[i] = qd - 1 - i;
	}
	nfree = qd;
	memset(txm, 0, sizeof txm);
	for (int i = 0; i < 4096; i++) {
		txm[i].msg_hdr.msg_iov = &txv[i];
		txm[i].msg_hdr.msg_iovlen = 1;
	}
}

static int run_initiator(void)
{
	int fd = open_socket();
	install_signals();
	discover(fd);

	unsigned fit = (unsigned)(ifmtu - ATA_HLEN) / 512;
	unsigned maxsect = T.maxsect < fit ? T.maxsect : fit;
	if (maxsect > 255) maxsect = 255;
	int count = opt.sectors ? opt.sectors : (int)maxsect;
	if ((unsigned)count > maxsect) {
		fprintf(stderr, "aoeload: %d sectors per command do not fit (target %u, local MTU %d allows %u)\n",
			count, T.maxsect, ifmtu, fit);
		exit(1);
	}
	int qd = opt.qd;
	if (opt.cap_window && T.bufcnt && (unsigned)qd > T.bufcnt)
		qd = (int)T.bufcnt;
	if ((uint64_t)count > T.nsect) {
		fprintf(stderr, "aoeload: device smaller than one command\n");
		exit(1);
	}
	int write = opt.write || opt.fill;
	setup_slots(qd, count, write);
	set_rcvtimeo(fd, 1000000); /* 1 ms: the receive wait never outlasts a retransmit deadline by much */

	static struct stats st, vst;
	struct workload w = {
		.write = write, .random = opt.fill ? 0 : opt.random, .count = count,
		.verify = opt.verify && !write, .rng = mix64(opt.seed ^ opt.epoch) | 1,
	};
	const char *op = opt.fill ? "fill" : write ? "write" : "read";
	uint64_t t0 = now_ns();
	double seconds;
	if (opt.fill) {
		w.limit = (T.nsect + (uint64_t)count - 1) / (uint64_t)count;
		run_engine(fd, &w, &st, UINT64_MAX, 0, UINT64_MAX, 2000000000ull, 0);
		seconds = (double)(now_ns() - t0) / 1e9;
		if (st.all_ops != w.limit) {
			fprintf(stderr, "aoeload: fill incomplete: %" PRIu64 " of %" PRIu64 " commands\n", st.all_ops, w.limit);
			st.short_replies += w.limit - st.all_ops;
		}
	} else {
		uint64_t ws = t0 + (uint64_t)(opt.warmup * 1e9);
		uint64_t we = ws + (uint64_t)(opt.duration * 1e9);
		run_engine(fd, &w, &st, we, ws, we, 2000000000ull, write && opt.verify);
		seconds = opt.duration;
	}
	if (stop_requested) {
		fprintf(stderr, "aoeload: interrupted\n");
		return 130;
	}

	/* Write read-back: the last completed writes must read back with this run's epoch. */
	uint64_t verified = 0;
	if (write && opt.verify && !opt.fill && write_ring_n) {
		uint64_t n = write_ring_n < WRITE_RING ? write_ring_n : WRITE_RING;
		static uint64_t list[WRITE_RING];
		for (uint64_t i = 0; i < n; i++)
			list[i] = write_ring[(write_ring_n - n + i) % WRITE_RING];
		struct workload r = { .write = 0, .count = count, .verify = 1, .exact_epoch = 1, .list = list, .list_n = n };
		run_engine(fd, &r, &vst, now_ns() + 10000000000ull, 0, UINT64_MAX, 2000000000ull, 0);
		verified = vst.all_ops;
		st.verify_errors += vst.verify_errors + vst.short_replies + vst.aoe_errors + vst.ata_errors;
		if (vst.all_ops != n)
			st.verify_errors += n - vst.all_ops;
	}

	uint64_t errors = st.aoe_errors + st.ata_errors + st.short_replies;
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	double cpu_s = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
		       (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
	double mbps = (double)st.bytes / seconds / 1e6;
	double iops = (double)st.ops / seconds;
	printf("RESULT label=%s op=%s pattern=%s sectors=%d bytes_per_op=%d qd=%d mtu=%d bufcnt=%u maxsect=%u"
	       " size_sectors=%" PRIu64 " seconds=%.3f ops=%" PRIu64 " bytes=%" PRIu64 " mbps=%.1f iops=%.0f"
	       " retrans=%" PRIu64 " errors=%" PRIu64 " aoe_errors=%" PRIu64 " ata_errors=%" PRIu64
	       " short=%" PRIu64 " verify=%s verify_errors=%" PRIu64 " verified_ops=%" PRIu64
	       " stale=%" PRIu64 " send_errors=%" PRIu64
	       " lat_avg_us=%.1f lat_p50_us=%.1f lat_p99_us=%.1f lat_p999_us=%.1f cpu_s=%.3f epoch=0x%08x tag_seed=0x%" PRIx64 "\n",
	       opt.label, op, w.random ? "rand" : "seq", count, count * 512, qd, ifmtu, T.bufcnt, T.maxsect,
	       T.nsect, seconds, st.ops, st.bytes, mbps, iops,
	       st.retrans, errors, st.aoe_errors, st.ata_errors, st.short_replies,
	       opt.verify ? "on" : "off", st.verify_errors, opt.fill ? st.all_ops : w.verify ? st.ops : verified,
	       st.stale, st.send_errors,
	       st.ops ? (double)st.lat_sum / (double)st.ops / 1000 : 0.0,
	       hist_percentile(st.hist, st.ops, 0.50) / 1000, hist_percentile(st.hist, st.ops, 0.99) / 1000,
	       hist_percentile(st.hist, st.ops, 0.999) / 1000, cpu_s, opt.epoch, opt.tag_seed);
	fflush(stdout);
	if (st.verify_errors)
		return 3;
	if (errors)
		return 2;
	return 0;
}

int main(int argc, char **argv)
{
	parse_args(argc, argv);
	pattern_init();
	return opt.respond ? run_responder() : run_initiator();
}
