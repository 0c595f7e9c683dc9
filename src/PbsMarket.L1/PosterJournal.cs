using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace PbsMarket.L1;

/// <summary>One signed transaction broadcast (or about to be) under the journaled nonce.</summary>
public sealed record JournaledTx(string Hash, string RawTx, BigInteger MaxFeePerGas, BigInteger MaxPriorityFeePerGas);

/// <summary>
/// The poster's in-flight transaction: written before anything is broadcast, so that a restarted poster
/// waits for (or rebroadcasts / replaces) it instead of reusing its nonce for something else.
/// <see cref="Transactions"/> holds every version signed under <see cref="Nonce"/> (the original and its fee bumps);
/// all carry the same <see cref="Data"/> (the same batch), so whichever lands posts the same slots.
/// </summary>
public sealed record PosterJournalEntry(ulong Nonce, IReadOnlyList<ulong> Slots, string Data, ulong GasLimit, IReadOnlyList<JournaledTx> Transactions,
    DateTimeOffset FirstSentAt);

/// <summary>Durable storage of the poster's one in-flight transaction (the relay keeps it in Redis).</summary>
public interface IPosterJournal
{
    Task<PosterJournalEntry?> LoadAsync();
    Task SaveAsync(PosterJournalEntry entry);
    Task ClearAsync();
}

/// <summary>A journal that lives as long as the process (tests, or callers that accept losing it).</summary>
public sealed class InMemoryPosterJournal : IPosterJournal
{
    PosterJournalEntry? _entry;
    public Task<PosterJournalEntry?> LoadAsync() => Task.FromResult(Volatile.Read(ref _entry));
    public Task SaveAsync(PosterJournalEntry entry) { Volatile.Write(ref _entry, entry); return Task.CompletedTask; }
    public Task ClearAsync() { Volatile.Write(ref _entry, null); return Task.CompletedTask; }
}

/// <summary>A JSON file journal: written atomically (temp file, fsync, rename, fsync of the directory).</summary>
public sealed class FilePosterJournal(string path) : IPosterJournal
{
    public static readonly JsonSerializerOptions Json = new()
    {
        WriteIndented = true, PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower, Converters = { new BigIntegerConverter() },
    };

    public string Path { get; } = System.IO.Path.GetFullPath(path);

    public async Task<PosterJournalEntry?> LoadAsync()
    {
        if (!File.Exists(Path)) return null;
        await using var stream = File.OpenRead(Path);
        return await JsonSerializer.DeserializeAsync<PosterJournalEntry>(stream, Json);
    }

    public async Task SaveAsync(PosterJournalEntry entry)
    {
        var dir = System.IO.Path.GetDirectoryName(Path)!;
        Directory.CreateDirectory(dir);
        var temp = Path + ".tmp-" + Environment.ProcessId.ToString(CultureInfo.InvariantCulture);
        await using (var stream = new FileStream(temp, FileMode.Create, FileAccess.Write, FileShare.None, 4096, FileOptions.WriteThrough))
        {
            await JsonSerializer.SerializeAsync(stream, entry, Json);
            await stream.FlushAsync();
            stream.Flush(flushToDisk: true);
        }
        File.Move(temp, Path, overwrite: true);
        SyncDirectory(dir);
    }

    public Task ClearAsync()
    {
        if (File.Exists(Path))
        {
            File.Delete(Path);
            SyncDirectory(System.IO.Path.GetDirectoryName(Path)!);
        }
        return Task.CompletedTask;
    }

    static void SyncDirectory(string dir)
    {
        if (OperatingSystem.IsWindows()) return;
        try
        {
            using var handle = File.OpenHandle(dir, FileMode.Open, FileAccess.Read, FileShare.ReadWrite, FileOptions.None);
            RandomAccess.FlushToDisk(handle);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // Best effort: some file systems refuse to open or sync a directory.
        }
    }

    sealed class BigIntegerConverter : JsonConverter<BigInteger>
    {
        public override BigInteger Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options) =>
            BigInteger.Parse(reader.GetString() ?? "0", CultureInfo.InvariantCulture);
        public override void Write(Utf8JsonWriter writer, BigInteger value, JsonSerializerOptions options) =>
            writer.WriteStringValue(value.ToString(CultureInfo.InvariantCulture));
    }
}
