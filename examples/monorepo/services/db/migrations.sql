create table if not exists greetings (id integer primary key, text text not null);
