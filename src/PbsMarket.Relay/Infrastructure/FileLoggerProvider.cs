using Microsoft.Extensions.Logging;

namespace PbsMarket.Relay.Infrastructure;

/// <summary>Writes log lines to a file: the devnet keeps every component's log in its runtime folder, and test runs with PBS_TEST_LOG_DIR keep the relays' logs.</summary>
public sealed class FileLoggerProvider(string path, LogLevel minimum = LogLevel.Information) : ILoggerProvider
{
    readonly StreamWriter _writer = new(path, append: true) { AutoFlush = true };
    readonly LogLevel _minimum = minimum;

    public ILogger CreateLogger(string categoryName) => new FileLogger(this, categoryName);

    public void Write(string line)
    {
        lock (_writer)
        {
            try { _writer.WriteLine(line); } catch (ObjectDisposedException) { }
        }
    }

    public void Dispose()
    {
        lock (_writer) _writer.Dispose();
    }

    sealed class FileLogger(FileLoggerProvider owner, string category) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;
        public bool IsEnabled(LogLevel logLevel) => logLevel >= owner._minimum;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (!IsEnabled(logLevel)) return;
            owner.Write($"{DateTime.UtcNow:HH:mm:ss.fff} {logLevel,-11} {category}: {formatter(state, exception)}{(exception is null ? "" : "\n" + exception)}");
        }
    }
}
