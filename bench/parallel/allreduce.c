/* The baseline for bench/parallel/allreduce.ts: a plain C MPI_Allreduce (in place, float sum) on the same sizes
 * and repetitions as Kiln's side. Built with mpicc by the bench. Arguments "<bytes>:<calls>"; prints one line per
 * size: "<bytes> <seconds per call>" (the mean of the ranks' times, as the Kiln side). */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  int rank, size;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  for (int a = 1; a < argc; a++) {
    long bytes = 0;
    int reps = 0;
    if (sscanf(argv[a], "%ld:%d", &bytes, &reps) != 2 || bytes <= 0 || reps <= 0) {
      if (rank == 0) fprintf(stderr, "allreduce: argument '%s' is not <bytes>:<calls>\n", argv[a]);
      MPI_Abort(MPI_COMM_WORLD, 2);
    }
    const int n = (int)(bytes / 4);
    float* buf = (float*)aligned_alloc(64, (size_t)bytes);
    for (int i = 0; i < n; i++) buf[i] = (float)(i % 7) * 0.25f + rank;
    MPI_Allreduce(MPI_IN_PLACE, buf, n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD); /* warm up */
    MPI_Barrier(MPI_COMM_WORLD);
    const double t0 = MPI_Wtime();
    for (int r = 0; r < reps; r++) MPI_Allreduce(MPI_IN_PLACE, buf, n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
    const double t = (MPI_Wtime() - t0) / reps;
    double sum;
    MPI_Reduce(&t, &sum, 1, MPI_DOUBLE, MPI_SUM, 0, MPI_COMM_WORLD);
    if (rank == 0) printf("%ld %.9f\n", bytes, sum / size);
    free(buf);
  }
  MPI_Finalize();
  return 0;
}
