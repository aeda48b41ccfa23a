-- Tests create their own databases, so noa gets every privilege (the image grants only on noa).
GRANT ALL PRIVILEGES ON *.* TO 'noa'@'%' WITH GRANT OPTION;
