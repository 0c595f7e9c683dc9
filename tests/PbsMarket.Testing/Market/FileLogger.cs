using Microsoft.Extensions.Logging;

namespace PbsMarket.Testing.Market;

/// <summary>
/// Writes a relay's log to a file when PBS_TEST_LOG_DIR is set, so a failing test can be read
/// afterwards (test runners swallow the console).
/// </summary>
public sealed class FileLoggerProvider(string path) : ILoggerProvider
{
    readonly StreamWriter _writer = new(path, append: true) { AutoFlush = true };

    public ILogger CreateLogger(string categoryName) => new FileLogger(this, categoryName);

    public void Dispose()
    {
        lock (_writer) _writer.Dispose();
    }

    sealed class FileLogger(FileLoggerProvider owner, string category) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;
        public bool IsEnabled(LogLevel logLevel) => logLevel >= LogLevel.Information;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (!IsEnabled(logLevel)) return;
            var line = $"{DateTime.UtcNow:HH:mm:ss.fff} {logLevel,-11} {category}: {formatter(state, exception)}{(exception is null ? "" : "\n" + exception)}";
            lock (owner._writer)
            {
                try { owner._writer.WriteLine(line); } catch (ObjectDisposedException) { }
            }
        }
    }
}
