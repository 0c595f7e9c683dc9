using System.Collections.Concurrent;
using System.Diagnostics.Metrics;

namespace PbsMarket.Relay.Infrastructure;

/// <summary>
/// The relay's instruments, on the <see cref="System.Diagnostics.Metrics.Meter"/> "PbsMarket.Relay" (one per host, from its
/// <see cref="IMeterFactory"/>), exported in the Prometheus text format at /metrics by OpenTelemetry's exporter (RelayHost).
/// Counts and latencies of an open auction's bids are recorded only once its slot has closed (<see cref="WhenClosed"/>).
/// </summary>
public sealed class RelayMetrics
{
    public const string MeterName = "PbsMarket.Relay";

    static readonly double[] LatencyBuckets = [0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];
    static readonly long[] SizeBuckets = [0, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 5000, 10000];

    readonly ConcurrentDictionary<ulong, ConcurrentQueue<Action<RelayMetrics>>> _sealed = new();
    long _archiveBacklog = -1;

    public RelayMetrics(IMeterFactory meters, EventHub hub)
    {
        Meter = meters.Create(MeterName);
        Bids = Meter.CreateCounter<long>("pbs_bids_total", description: "Bids answered, by result code (published after the slot closes).");
        BidSeconds = Meter.CreateHistogram("pbs_bid_seconds", unit: null, description: "Time to answer a bid (published after the slot closes).",
            tags: null, advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = LatencyBuckets });
        SimulationSeconds = Meter.CreateHistogram("pbs_simulation_seconds", unit: null, description: "Time to simulate a bid's block on the L2 node, by result code (published after the slot closes).",
            tags: null, advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = LatencyBuckets });
        Demotions = Meter.CreateCounter<long>("pbs_demotions_total", description: "Builders demoted because an optimistic bid's block failed execution, by code (published after the slot closes).");
        AuctionBids = Meter.CreateHistogram("pbs_auction_bids", unit: null, description: "Bids in each closed auction.",
            tags: null, advice: new InstrumentAdvice<long> { HistogramBucketBoundaries = SizeBuckets });
        AuctionsClosed = Meter.CreateCounter<long>("pbs_auctions_closed_total", description: "Auctions closed by this instance, by outcome (won, empty).");
        HeadersServed = Meter.CreateCounter<long>("pbs_headers_served_total", description: "Winning headers served to proposers.");
        Proposals = Meter.CreateCounter<long>("pbs_proposals_total", description: "Signed proposals accepted, by source (auction, announced).");
        Equivocations = Meter.CreateCounter<long>("pbs_equivocations_total", description: "Proposer equivocations seen.");
        ArchiveRecords = Meter.CreateCounter<long>("pbs_archive_records_total", description: "Records written to PostgreSQL.");
        ArchiveErrors = Meter.CreateCounter<long>("pbs_archive_errors_total", description: "Failed archive attempts.");
        L1BalanceReads = Meter.CreateCounter<long>("pbs_l1_balance_reads_total", description: "Escrow balance reads on L1, by key (depositor, unknown).");
        L1Errors = Meter.CreateCounter<long>("pbs_l1_errors_total", description: "Failed L1 sync or posting rounds.");
        L1Rejected = Meter.CreateCounter<long>("pbs_l1_rejected_total", description: "Headers L1 refused.");
        L1EquivocationReports = Meter.CreateCounter<long>("pbs_l1_equivocation_reports_total", description: "Equivocation reports sent to L1.");
        L1Posted = Meter.CreateCounter<long>("pbs_l1_posted_total", description: "Slots posted to L1, by whom (us, other).");
        Meter.CreateObservableGauge("pbs_archive_backlog", () => Interlocked.Read(ref _archiveBacklog),
            description: "Accepted records not yet archived (read from Redis at each scrape; -1 when Redis does not answer).");
        Meter.CreateObservableGauge("pbs_stream_clients", () => hub.ClientCount, description: "Open event-stream connections.");
    }

    public Meter Meter { get; }
    public Counter<long> Bids { get; }
    public Histogram<double> BidSeconds { get; }
    public Histogram<double> SimulationSeconds { get; }
    public Counter<long> Demotions { get; }
    public Histogram<long> AuctionBids { get; }
    public Counter<long> AuctionsClosed { get; }
    public Counter<long> HeadersServed { get; }
    public Counter<long> Proposals { get; }
    public Counter<long> Equivocations { get; }
    public Counter<long> ArchiveRecords { get; }
    public Counter<long> ArchiveErrors { get; }
    public Counter<long> L1BalanceReads { get; }
    public Counter<long> L1Errors { get; }
    public Counter<long> L1Rejected { get; }
    public Counter<long> L1EquivocationReports { get; }
    public Counter<long> L1Posted { get; }

    public static KeyValuePair<string, object?> Tag(string name, string value) => new(name, value);

    /// <summary>Set just before each scrape (the backlog is a Redis read, which an observable gauge's callback cannot await).</summary>
    public void SetArchiveBacklog(long value) => Interlocked.Exchange(ref _archiveBacklog, value);

    /// <summary>
    /// Records a measurement about an open auction's bids, held back until the slot closes, so that
    /// /metrics never reveals how many bids an open auction has.
    /// </summary>
    public void WhenClosed(ulong slot, Action<RelayMetrics> record) =>
        _sealed.GetOrAdd(slot, _ => new ConcurrentQueue<Action<RelayMetrics>>()).Enqueue(record);

    /// <summary>Publishes what was held back for every slot up to and including <paramref name="slot"/>.</summary>
    public void ReleaseThrough(ulong slot)
    {
        foreach (var key in _sealed.Keys.Where(k => k <= slot))
            if (_sealed.TryRemove(key, out var queue))
                while (queue.TryDequeue(out var record)) record(this);
    }
}
