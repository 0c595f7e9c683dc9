using System.Globalization;
using System.Diagnostics.Metrics;
using PbsMarket.Core;

namespace PbsMarket.Proposer;

public enum SlotOutcome
{
    /// <summary>A relay's header was signed and its payload came back.</summary>
    Proposed,
    /// <summary>The client's own block was signed and announced.</summary>
    Fallback,
    /// <summary>Nothing usable was signed for the slot.</summary>
    Missed,
}

/// <summary>One led slot, as the per-slot log line reports it.</summary>
public sealed record SlotReport(
    ulong Slot, Address Proposer, SlotOutcome Outcome, string Source, Header? Header, Hash32? HeaderHash, BigInteger Value, BigInteger Price,
    IReadOnlyList<string> Refusals, string Detail, long ElapsedMs)
{
    public override string ToString()
    {
        var number = Header?.Number.ToString(CultureInfo.InvariantCulture) ?? "-";
        var text = string.Create(CultureInfo.InvariantCulture,
            $"slot {Slot} led by {Proposer}: {Outcome.ToString().ToLowerInvariant()} via {Source}, value {Value}, price {Price}, header {HeaderHash?.ToString() ?? "-"} (number {number}, {ElapsedMs} ms)");
        if (Detail.Length > 0) text += "; " + Detail;
        if (Refusals.Count > 0) text += "; refused: " + string.Join("; ", Refusals);
        return text;
    }
}

/// <summary>Counters an operator reads (printed by the CLI, optionally served as Prometheus text).</summary>
public sealed record ProposerMetricsSnapshot(
    long SlotsLed, long Proposed, IReadOnlyDictionary<string, long> WonByRelay, long Fallbacks, long Missed, BigInteger ValueEarned,
    long HeadersRefused, long JournalRefusals, long PostedByClient, IReadOnlyList<SlotReport> RecentSlots);

/// <summary>Thread-safe counters of one client.</summary>
public sealed class ProposerMetrics
{
    readonly object _gate = new();
    readonly Dictionary<string, long> _won = [];
    readonly Queue<SlotReport> _recent = new();
    long _led, _proposed, _fallbacks, _missed, _refused, _journalRefusals, _posted;
    BigInteger _earned;

    internal void Record(SlotReport report)
    {
        lock (_gate)
        {
            _led++;
            switch (report.Outcome)
            {
                case SlotOutcome.Proposed:
                    _proposed++;
                    _won[report.Source] = _won.GetValueOrDefault(report.Source) + 1;
                    _earned += report.Price;
                    break;
                case SlotOutcome.Fallback: _proposed++; _fallbacks++; break;
                default: _missed++; break;
            }
            _recent.Enqueue(report);
            while (_recent.Count > 64) _recent.Dequeue();
        }
    }

    internal void HeaderRefused(int n) { lock (_gate) _refused += n; }
    internal void JournalRefused() { lock (_gate) _journalRefusals++; }
    internal void PostedByClient() { lock (_gate) _posted++; }

    public ProposerMetricsSnapshot Snapshot()
    {
        lock (_gate)
            return new(_led, _proposed, new Dictionary<string, long>(_won), _fallbacks, _missed, _earned, _refused, _journalRefusals, _posted, [.. _recent]);
    }

    public const string MeterName = "PbsMarket.Proposer";

    /// <summary>
    /// The counters as observable instruments of <paramref name="meter"/> (exported in the Prometheus format by
    /// OpenTelemetry's exporter, like the relay's): each reads the current snapshot when scraped.
    /// </summary>
    internal void Publish(Meter meter)
    {
        void Counter(string name, string description, Func<ProposerMetricsSnapshot, long> read) =>
            meter.CreateObservableCounter(name, () => read(Snapshot()), description: description);
        Counter("pbs_proposer_slots_led_total", "Slots led by one of the client's keys.", s => s.SlotsLed);
        Counter("pbs_proposer_proposed_total", "Slots for which a header was signed and delivered (relay or fallback).", s => s.Proposed);
        Counter("pbs_proposer_fallbacks_total", "Slots proposed with the client's own block.", s => s.Fallbacks);
        Counter("pbs_proposer_missed_total", "Led slots with nothing proposed.", s => s.Missed);
        Counter("pbs_proposer_headers_refused_total", "Relay headers that failed the client's checks.", s => s.HeadersRefused);
        Counter("pbs_proposer_journal_refusals_total", "Signatures refused by the signing journal.", s => s.JournalRefusals);
        Counter("pbs_proposer_l1_posts_total", "Headers the client posted to L1 itself.", s => s.PostedByClient);
        // Prometheus values are float64 anyway: the wei sum is exact up to 2^53 wei, then rounded like any scraped value.
        meter.CreateObservableCounter("pbs_proposer_value_earned_wei_total", () => (double)Snapshot().ValueEarned,
            description: "Sum of the prices of relay-won slots (wei).");
        meter.CreateObservableCounter("pbs_proposer_won_total",
            () => Snapshot().WonByRelay.Select(kv => new Measurement<long>(kv.Value, new KeyValuePair<string, object?>("relay", kv.Key))),
            description: "Slots won through each relay.");
    }
}
