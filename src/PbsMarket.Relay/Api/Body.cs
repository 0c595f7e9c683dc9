using System.Buffers;

namespace PbsMarket.Relay.Api;

/// <summary>Reads a request body into memory with a hard size limit (checked before parsing).</summary>
internal static class Body
{
    public static async Task<(ReadOnlyMemory<byte> Bytes, Rejection? Error)> ReadAsync(HttpRequest request, int maxBytes, CancellationToken ct)
    {
        if (request.ContentType is { Length: > 0 } type && !type.StartsWith("application/json", StringComparison.OrdinalIgnoreCase))
            return (default, new Rejection("unsupported_media_type", $"Content-Type must be application/json, not {type}"));
        if (request.ContentLength is { } declared && declared > maxBytes)
            return (default, new Rejection("payload_too_large", $"the body is {declared} bytes; the limit is {maxBytes}"));
        // Grown as bytes arrive, never sized from the declared Content-Length: a client that declares
        // a megabyte and sends nothing (or trickles) must not get a megabyte of memory per connection.
        var buffer = new ArrayBufferWriter<byte>(4096);
        try
        {
            while (true)
            {
                var memory = buffer.GetMemory(8192);
                var read = await request.Body.ReadAsync(memory, ct);
                if (read == 0) break;
                buffer.Advance(read);
                if (buffer.WrittenCount > maxBytes)
                    return (default, new Rejection("payload_too_large", $"the body exceeds the limit of {maxBytes} bytes"));
            }
        }
        catch (BadHttpRequestException e) when (e.StatusCode == StatusCodes.Status413PayloadTooLarge)
        {
            return (default, new Rejection("payload_too_large", $"the body exceeds the server's limit: {e.Message}"));
        }
        return (buffer.WrittenMemory, null);
    }
}
