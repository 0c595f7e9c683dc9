namespace PbsMarket.L2;

/// <summary>
/// A mutual-exclusion lock whose priority waiters go before every ordinary one (FIFO within each class). The engine's
/// lock: a relay closing an auction simulates its winner ahead of public reads, the derivation and bid prefetches.
/// </summary>
public sealed class PriorityGate
{
    readonly Lock _gate = new();
    readonly LinkedList<TaskCompletionSource> _high = new(), _low = new();
    bool _held;

    public Task WaitAsync(CancellationToken ct) => WaitAsync(false, ct);

    public Task WaitAsync(bool priority, CancellationToken ct)
    {
        ct.ThrowIfCancellationRequested();
        LinkedListNode<TaskCompletionSource> node;
        lock (_gate)
        {
            if (!_held)
            {
                _held = true;
                return Task.CompletedTask;
            }
            node = (priority ? _high : _low).AddLast(new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously));
        }
        if (!ct.CanBeCanceled) return node.Value.Task;
        var registration = ct.Register(() =>
        {
            lock (_gate)
            {
                // Still waiting: leave the queue. Already handed the lock: keep it (the caller gets it and releases it).
                if (node.List is null) return;
                node.List.Remove(node);
            }
            node.Value.TrySetCanceled(ct);
        });
        return node.Value.Task.ContinueWith(t =>
        {
            registration.Dispose();
            return t;
        }, CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default).Unwrap();
    }

    public void Release()
    {
        TaskCompletionSource? next;
        lock (_gate)
        {
            var queue = _high.Count > 0 ? _high : _low.Count > 0 ? _low : null;
            if (queue is null)
            {
                _held = false;
                return;
            }
            next = queue.First!.Value;
            queue.RemoveFirst(); // the lock passes to it while held
        }
        next.TrySetResult();
    }
}
