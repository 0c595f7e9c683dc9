using System.Globalization;
using System.Text.Json;
using PbsMarket.Core;

namespace PbsMarket.Proposer;

/// <summary>The journal cannot be read or written: signing stops for its key (fail closed).</summary>
public sealed class SigningJournalException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>One durable decision: slot <see cref="Slot"/> gets header <see cref="HeaderHash"/>.</summary>
public sealed record JournalEntry(ulong Slot, Hash32 HeaderHash, Header Header, string Source, DateTimeOffset SignedAt);

public enum JournalVerdict
{
    /// <summary>Nothing signed for the slot and the slot is above every signed slot: may be signed after <see cref="SigningJournal.Record"/>.</summary>
    New,
    /// <summary>This very header is already recorded for the slot: signing it again is harmless.</summary>
    SameHeader,
    /// <summary>Another header is recorded for the slot, or a later slot is already signed: refuse.</summary>
    Refused,
}

/// <summary>
/// Slashing protection in the spirit of EIP-3076, one file per key (<c>DataDir/signing/&lt;address&gt;.json</c>).
/// A decision is written (temp file, fsync, rename, fsync of the directory) before the Proposal signature is made.
/// Rules: a slot with a recorded header may only be signed for that header; a slot with no record may be signed
/// only if it is above the highest slot ever recorded (the watermark survives pruning of old entries).
/// A missing file is a fresh journal; an unreadable or corrupt one throws <see cref="SigningJournalException"/>
/// and nothing is signed for that key. A lock file keeps a second process off the same journal.
/// </summary>
public sealed class SigningJournal : IDisposable
{
    const int Version = 1;
    const int KeepEntries = 1024;
    readonly object _gate = new();
    readonly SortedDictionary<ulong, JournalEntry> _entries = [];
    readonly FileStream _lock;
    ulong? _highest;

    SigningJournal(string path, Address address, FileStream lockFile)
    {
        Path = path;
        Address = address;
        _lock = lockFile;
    }

    public string Path { get; }
    public Address Address { get; }
    public ulong? HighestSlot { get { lock (_gate) return _highest; } }

    public static string PathFor(string dataDir, Address address) => System.IO.Path.Combine(System.IO.Path.GetFullPath(dataDir), "signing", address + ".json");

    /// <summary>Opens (or creates) the journal of <paramref name="address"/>; throws <see cref="SigningJournalException"/> when
    /// it is corrupt, unreadable, belongs to another key, or is locked by another process.</summary>
    public static SigningJournal Open(string dataDir, Address address)
    {
        var path = PathFor(dataDir, address);
        FileStream lockFile;
        try
        {
            Directory.CreateDirectory(System.IO.Path.GetDirectoryName(path)!);
            lockFile = new FileStream(path + ".lock", FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
        }
        catch (IOException e)
        {
            throw new SigningJournalException($"signing journal {path} is locked by another process (never run one key in two clients)", e);
        }
        catch (UnauthorizedAccessException e)
        {
            throw new SigningJournalException($"signing journal {path} is not accessible: {e.Message}", e);
        }
        var journal = new SigningJournal(path, address, lockFile);
        try
        {
            journal.LoadFile();
        }
        catch
        {
            lockFile.Dispose();
            throw;
        }
        return journal;
    }

    void LoadFile()
    {
        if (!File.Exists(Path)) return;
        byte[] bytes;
        try { bytes = File.ReadAllBytes(Path); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new SigningJournalException($"signing journal {Path} cannot be read: {e.Message}; refusing to sign for {Address}", e);
        }
        try
        {
            using var doc = JsonDocument.Parse(bytes);
            var root = doc.RootElement;
            if (root.GetProperty("version").GetInt32() != Version) throw new FormatException("unknown version");
            if (Address.Parse(root.GetProperty("address").GetString()!) != Address) throw new FormatException($"it belongs to {root.GetProperty("address").GetString()}");
            var highest = root.GetProperty("highest_slot");
            _highest = highest.ValueKind == JsonValueKind.Null ? null : ulong.Parse(highest.GetString()!, NumberStyles.None, CultureInfo.InvariantCulture);
            foreach (var e in root.GetProperty("entries").EnumerateArray())
            {
                var slot = ulong.Parse(e.GetProperty("slot").GetString()!, NumberStyles.None, CultureInfo.InvariantCulture);
                var hash = Hash32.Parse(e.GetProperty("header_hash").GetString()!);
                var header = Wire.ParseHeader(e.GetProperty("header"));
                if (!header.IsOk) throw new FormatException($"entry for slot {slot}: {header.Error}");
                if (header.Value.Hash() != hash || header.Value.Slot != slot) throw new FormatException($"entry for slot {slot}: header does not match its hash");
                if (_highest is null || slot > _highest) throw new FormatException($"entry for slot {slot} is above the highest slot");
                var signedAt = DateTimeOffset.Parse(e.GetProperty("signed_at").GetString()!, CultureInfo.InvariantCulture);
                if (!_entries.TryAdd(slot, new JournalEntry(slot, hash, header.Value, e.GetProperty("source").GetString()!, signedAt)))
                    throw new FormatException($"slot {slot} appears twice");
            }
        }
        catch (Exception e) when (e is JsonException or FormatException or KeyNotFoundException or InvalidOperationException or OverflowException or ArgumentException)
        {
            throw new SigningJournalException($"signing journal {Path} is corrupt ({e.Message}); refusing to sign for {Address}. " +
                "Restore it from a backup; never delete it while the key may have signed in recent slots", e);
        }
    }

    public JournalEntry? Get(ulong slot)
    {
        lock (_gate) return _entries.GetValueOrDefault(slot);
    }

    public JournalVerdict Check(ulong slot, Hash32 headerHash)
    {
        lock (_gate)
        {
            if (_entries.TryGetValue(slot, out var e)) return e.HeaderHash == headerHash ? JournalVerdict.SameHeader : JournalVerdict.Refused;
            return _highest is { } h && slot <= h ? JournalVerdict.Refused : JournalVerdict.New;
        }
    }

    /// <summary>Records "slot gets header" durably; returns only once it is on disk. Refuses (throws) a conflicting decision.</summary>
    public void Record(Header header, string source, DateTimeOffset now)
    {
        ArgumentNullException.ThrowIfNull(header);
        var hash = header.Hash();
        lock (_gate)
        {
            switch (Check(header.Slot, hash))
            {
                case JournalVerdict.SameHeader: return;
                case JournalVerdict.Refused: throw new SigningJournalException($"slot {header.Slot} is already decided (or below the watermark {_highest}); not recording {hash}");
            }
            _entries[header.Slot] = new JournalEntry(header.Slot, hash, header, source, now);
            var previousHighest = _highest;
            _highest = header.Slot;
            while (_entries.Count > KeepEntries) _entries.Remove(_entries.Keys.First());
            try { Write(); }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                // Not durable: forget it in memory too, so it is not treated as decided; the caller must not sign.
                _entries.Remove(header.Slot);
                _highest = previousHighest;
                throw new SigningJournalException($"signing journal {Path} cannot be written: {e.Message}", e);
            }
        }
    }

    void Write()
    {
        var dir = System.IO.Path.GetDirectoryName(Path)!;
        var temp = Path + ".tmp";
        using (var stream = new FileStream(temp, FileMode.Create, FileAccess.Write, FileShare.None, 4096, FileOptions.WriteThrough))
        {
            using (var w = new Utf8JsonWriter(stream, new JsonWriterOptions { Indented = true }))
            {
                w.WriteStartObject();
                w.WriteNumber("version", Version);
                w.WriteString("address", Address.ToString());
                if (_highest is { } h) w.WriteString("highest_slot", h.ToString(CultureInfo.InvariantCulture));
                else w.WriteNull("highest_slot");
                w.WriteStartArray("entries");
                foreach (var e in _entries.Values)
                {
                    w.WriteStartObject();
                    w.WriteString("slot", e.Slot.ToString(CultureInfo.InvariantCulture));
                    w.WriteString("header_hash", e.HeaderHash.ToString());
                    w.WriteString("source", e.Source);
                    w.WriteString("signed_at", e.SignedAt.ToString("O", CultureInfo.InvariantCulture));
                    w.WritePropertyName("header");
                    Wire.WriteHeader(w, e.Header);
                    w.WriteEndObject();
                }
                w.WriteEndArray();
                w.WriteEndObject();
            }
            stream.Flush(flushToDisk: true);
        }
        File.Move(temp, Path, overwrite: true);
        SyncDirectory(dir);
    }

    static void SyncDirectory(string dir)
    {
        if (OperatingSystem.IsWindows()) return; // NTFS makes the rename durable with the file's metadata
        // .NET cannot open a directory as a file, so fsync(2) it through libc: the rename is durable only after this.
        int fd;
        try { fd = PosixDir.Open(dir, PosixDir.ReadOnlyDirectory); }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException) { return; }
        if (fd < 0) throw new IOException($"cannot open directory {dir} to fsync it (errno {System.Runtime.InteropServices.Marshal.GetLastPInvokeError()})");
        try
        {
            if (PosixDir.Fsync(fd) != 0) throw new IOException($"fsync of directory {dir} failed (errno {System.Runtime.InteropServices.Marshal.GetLastPInvokeError()})");
        }
        finally
        {
            _ = PosixDir.Close(fd);
        }
    }

    public void Dispose() => _lock.Dispose();
}

internal static partial class PosixDir
{
    /// <summary>O_RDONLY | O_DIRECTORY on Linux (0x10000); macOS uses 0x100000.</summary>
    public static int ReadOnlyDirectory => OperatingSystem.IsMacOS() ? 0x100000 : 0x10000;

    [System.Runtime.InteropServices.LibraryImport("libc", EntryPoint = "open", SetLastError = true, StringMarshalling = System.Runtime.InteropServices.StringMarshalling.Utf8)]
    public static partial int Open(string path, int flags);

    [System.Runtime.InteropServices.LibraryImport("libc", EntryPoint = "fsync", SetLastError = true)]
    public static partial int Fsync(int fd);

    [System.Runtime.InteropServices.LibraryImport("libc", EntryPoint = "close", SetLastError = true)]
    public static partial int Close(int fd);
}
