using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;

namespace PbsMarket.Testing.Market;

/// <summary>
/// The newest warnings and errors of one in-process relay, kept in memory, so that a test that fails in CI can say what
/// the relay saw (which Redis node refused, which exception) without PBS_TEST_LOG_DIR set before the run.
/// </summary>
public sealed class RecentLog(int capacity = 200) : ILoggerProvider
{
    readonly ConcurrentQueue<string> _lines = new();

    public IReadOnlyList<string> Lines => [.. _lines];

    /// <summary>The lines, newest last, each cut to <paramref name="width"/> characters.</summary>
    public string Tail(int count = 20, int width = 400) =>
        string.Join("\n", _lines.TakeLast(count).Select(l => l.Length > width ? l[..width] + "…" : l));

    public ILogger CreateLogger(string categoryName) => new Logger(this, categoryName);

    public void Dispose() { }

    void Add(string line)
    {
        _lines.Enqueue(line);
        while (_lines.Count > capacity) _lines.TryDequeue(out _);
    }

    sealed class Logger(RecentLog owner, string category) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;
        public bool IsEnabled(LogLevel logLevel) => logLevel >= LogLevel.Warning;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (!IsEnabled(logLevel)) return;
            var inner = exception is null ? "" : $" [{exception.GetType().Name}: {exception.Message}{(exception.InnerException is { } i ? $" <- {i.GetType().Name}: {i.Message}" : "")}]";
            owner.Add($"{DateTime.UtcNow:HH:mm:ss.fff} {logLevel} {category}: {formatter(state, exception)}{inner}");
        }
    }
}
