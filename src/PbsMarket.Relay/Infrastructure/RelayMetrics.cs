using System.Collections.Concurrent;
using System.Globalization;
using System.Text;

namespace PbsMarket.Relay.Infrastructure;

/// <summary>Counters and histograms rendered in the Prometheus text format at /metrics.</summary>
public sealed class RelayMetrics
{
    readonly ConcurrentDictionary<string, long> _counters = new();
    readonly ConcurrentDictionary<string, Histogram> _histograms = new();

    readonly ConcurrentDictionary<ulong, ConcurrentQueue<Action<RelayMetrics>>> _sealed = new();

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

    public void Count(string name, string? labels = null, long by = 1) =>
        _counters.AddOrUpdate(labels is null ? name : $"{name}{{{labels}}}", by, (_, v) => v + by);

    public void Observe(string name, double value, double[] buckets) =>
        _histograms.GetOrAdd(name, _ => new Histogram(buckets)).Observe(value);

    public static readonly double[] LatencyBuckets = [0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];
    public static readonly double[] SizeBuckets = [0, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 5000, 10000];

    public string Render(IEnumerable<(string Name, double Value)> gauges)
    {
        var sb = new StringBuilder();
        foreach (var (key, value) in _counters.OrderBy(k => k.Key, StringComparer.Ordinal))
            sb.Append(key).Append(' ').Append(value.ToString(CultureInfo.InvariantCulture)).Append('\n');
        foreach (var (name, h) in _histograms.OrderBy(k => k.Key, StringComparer.Ordinal)) h.Render(name, sb);
        foreach (var (name, value) in gauges)
            sb.Append(name).Append(' ').Append(value.ToString(CultureInfo.InvariantCulture)).Append('\n');
        return sb.ToString();
    }

    sealed class Histogram(double[] buckets)
    {
        readonly long[] _counts = new long[buckets.Length];
        long _count;
        double _sum;
        readonly object _gate = new();

        public void Observe(double v)
        {
            lock (_gate)
            {
                for (var i = 0; i < buckets.Length; i++) if (v <= buckets[i]) _counts[i]++;
                _count++;
                _sum += v;
            }
        }

        public void Render(string name, StringBuilder sb)
        {
            lock (_gate)
            {
                sb.Append("# TYPE ").Append(name).Append(" histogram\n");
                for (var i = 0; i < buckets.Length; i++)
                    sb.Append(name).Append("_bucket{le=\"").Append(buckets[i].ToString(CultureInfo.InvariantCulture)).Append("\"} ").Append(_counts[i]).Append('\n');
                sb.Append(name).Append("_bucket{le=\"+Inf\"} ").Append(_count).Append('\n');
                sb.Append(name).Append("_sum ").Append(_sum.ToString(CultureInfo.InvariantCulture)).Append('\n');
                sb.Append(name).Append("_count ").Append(_count).Append('\n');
            }
        }
    }
}
